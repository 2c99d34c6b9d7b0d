"""The messages a model receives: the system prompt, then the conversation's turns, newest kept when it is long."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# About four characters a token: keeps the history inside a budget without a tokenizer in the hot path.
CHARS_PER_TOKEN = 4
HISTORY_TOKEN_BUDGET = 3000


@dataclass
class Turn:
    """One message of a conversation, before it is shaped for the model.

    ``speaker`` names the person on user turns (several people share a Discord conversation); ``notes`` are
    text that came with the message (inlined files, a word on what was left out); ``images`` are OpenAI-style
    ``image_url`` parts for vision models.
    """

    role: Literal["user", "assistant"]
    text: str
    speaker: str = ""
    notes: list[str] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)

    def content(self) -> str | list[dict[str, Any]]:
        text = f"{self.speaker}: {self.text}" if self.role == "user" and self.speaker else self.text
        if self.notes:
            text = "\n".join([text, *self.notes])
        if not self.images:
            return text
        return [{"type": "text", "text": text}, *self.images]


def build_messages(
    *, system_prompt: str, turns: list[Turn], token_budget: int = HISTORY_TOKEN_BUDGET
) -> list[dict[str, Any]]:
    """The system prompt, then ``turns`` (oldest first). Past ``token_budget`` the oldest turns are dropped; the
    last one always goes."""
    messages = [{"role": turn.role, "content": turn.content()} for turn in turns]
    budget = token_budget * CHARS_PER_TOKEN
    while len(messages) > 1 and sum(_size(m["content"]) for m in messages) > budget:
        messages.pop(0)
    if system_prompt:
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages


def _size(content: str | list[dict[str, Any]]) -> int:
    if isinstance(content, str):
        return len(content)
    return sum(len(part.get("text", "")) for part in content)
