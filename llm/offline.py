"""Parley's offline model: a deterministic local responder that needs no API key and no network.

It lets a fresh install show the whole pipeline (Discord message, LLM call, reply, usage row) before anyone has
configured a provider, and it tells the reader how to get real answers (configure a provider, or pick another
model once one is configured). It never imports litellm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

ECHO_LIMIT = 300  # characters of the last user message quoted back


@dataclass(frozen=True)
class OfflineAnswer:
    text: str
    input_tokens: int
    output_tokens: int
    finish_reason: str


def approx_tokens(text: str) -> int:
    """About four characters a token, the usual rule of thumb for English; 0 for empty text."""
    return math.ceil(len(text) / 4)


def content_text(content: Any) -> str:
    """The text of an OpenAI-style message content: a string, or a list of parts of which text ones count."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def _image_count(content: Any) -> int:
    if not isinstance(content, list):
        return 0
    return sum(1 for part in content if isinstance(part, dict) and part.get("type") == "image_url")


def _provider_configured() -> bool:
    """Whether the operator gave any real provider an API key. Imported here, not at the top: bench/bare_bot.py
    runs this module without Django settings (and then, like a fresh install, has no provider)."""
    from django.conf import settings

    if not settings.configured:
        return False
    from llm import registry

    return registry.any_provider_configured()


def _introduction() -> list[str]:
    """Who is answering and how to get real answers; true whether or not the operator configured a provider."""
    if _provider_configured():
        return [
            "I'm Parley's offline model: this server's model is set to the offline one, so I can only echo you.",
            "To get real answers, a server admin picks another model in the Parley dashboard (Settings, Model).",
        ]
    return [
        "I'm Parley's offline model: no AI provider is configured for this bot, so I can only echo you.",
        "To get real answers, the operator sets OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY or "
        "XAI_API_KEY and restarts the bot, then a server admin picks a model in the Parley dashboard.",
    ]


def respond(messages: Sequence[dict[str, Any]], max_tokens: int | None = None) -> OfflineAnswer:
    """The offline model's whole answer to ``messages``."""
    user_turns = [m for m in messages if m.get("role") == "user"]
    has_system = any(m.get("role") == "system" for m in messages)
    last = user_turns[-1].get("content") if user_turns else ""
    said = " ".join(content_text(last).split())
    if len(said) > ECHO_LIMIT:
        said = said[: ECHO_LIMIT - 1].rstrip() + "…"
    images = _image_count(last)

    lines = [
        *_introduction(),
        "",
        f"You said: {said}" if said else "You sent no text.",
    ]
    if images:
        lines.append(f"(You attached {images} image{'s' if images != 1 else ''}; I can't look at images.)")
    lines.append(
        f"Conversation: {len(user_turns)} user turn{'s' if len(user_turns) != 1 else ''}, "
        f"{len(messages)} message{'s' if len(messages) != 1 else ''} in all, "
        f"system prompt {'seen' if has_system else 'not set'}."
    )
    text = "\n".join(lines)

    finish_reason = "stop"
    if max_tokens is not None and approx_tokens(text) > max_tokens:
        text = text[: max(max_tokens, 1) * 4]
        finish_reason = "length"

    prompt = "\n".join(content_text(m.get("content")) for m in messages)
    return OfflineAnswer(
        text=text,
        input_tokens=approx_tokens(prompt),
        output_tokens=approx_tokens(text),
        finish_reason=finish_reason,
    )
