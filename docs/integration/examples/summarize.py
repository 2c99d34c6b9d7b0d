"""Example (docs/integration/using-the-llm-client.md): summarize a text, the two ways to reach a model.

``summarize`` is for a summary someone asked for: it goes through ``llm.answering.answer``, like the chat cog,
``/ask`` and the playground, so the channel's model, fallback and limits apply and one usage row is written,
whatever happens. ``summary_reply`` is the lower level, the client alone: the caller builds the messages, and
nothing checks limits or writes a usage row for it (this example writes one itself).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

from asgiref.sync import sync_to_async

from llm import registry
from llm.answering import AnswerSettings, Asker, Outcome, answer
from llm.client import generate
from llm.errors import LLMError
from llm.limits import LimitGate
from llm.models import Usage
from llm.prompting import Turn
from llm.request import LLMRequest, Reply
from llm.usage import usage_record

INSTRUCTIONS = "Summarize the user's text in at most {words} words. Answer with the summary only."


def summary_settings(settings: AnswerSettings, *, max_words: int = 60) -> AnswerSettings:
    """The channel's settings (``snapshot.effective(channel_id)``) with our instructions in place of its prompt."""
    return replace(
        settings,
        system_prompt=INSTRUCTIONS.format(words=max_words),
        temperature=0.2,
        max_output_tokens=max_words * 3,  # about 1.3 tokens a word, with room to spare; never unbounded
    )


def _growing(on_text: Callable[[str], Awaitable[None]]) -> Callable[[AsyncIterator[str]], Awaitable[None]]:
    """A ``deliver`` for answer(): ``on_text`` gets the whole text so far after each piece."""

    async def deliver(deltas: AsyncIterator[str]) -> None:
        so_far = ""
        async for delta in deltas:
            so_far += delta
            await on_text(so_far)

    return deliver


async def summarize(
    text: str,
    *,
    settings: AnswerSettings,
    asker: Asker,
    gate: LimitGate,
    on_text: Callable[[str], Awaitable[None]] | None = None,
) -> Outcome:
    """Summarize ``text`` for ``asker``. With ``on_text``, it gets the summary so far each time more arrives
    (a cog would edit a Discord message with it, as ``botcore.replying.StreamedReply`` does).

    Never raises for the model's sake: a refusal or a failure is ``outcome.status``, with ``outcome.notice`` to
    show the asker.
    """
    return await answer(
        settings=summary_settings(settings),
        turns=[Turn(role="user", text=text)],
        asker=asker,
        gate=gate,
        deliver=_growing(on_text) if on_text is not None else None,
        streaming=on_text is not None,
        # The row is written before answer() returns. The bot's cogs keep the default (True), which queues it
        # so that the reply never waits for the database.
        record_later=False,
    )


async def summary_reply(
    text: str, *, model: str | None = None, guild_pk: int | None = None, source: str = Usage.Source.SLASH
) -> Reply:
    """The client alone. Raises ``LLMError`` (after recording it) when the model cannot answer."""
    request = LLMRequest(
        model=model or registry.default_model_id(),
        messages=[
            {"role": "system", "content": INSTRUCTIONS.format(words=60)},
            {"role": "user", "content": text},
        ],
        temperature=0.2,
        max_tokens=180,
    )
    # Every call costs something, so every call gets its usage row, like the ones answer() writes.
    usage: dict[str, Any] = {
        "guild_pk": guild_pk,
        "channel_id": None,
        "user_id": None,
        "model": request.model,
        "source": source,
    }
    try:
        reply = await generate(request)
    except LLMError as exc:
        # usage_record is plain ORM code: from async code it runs through sync_to_async.
        await sync_to_async(usage_record)(**usage, error=exc)
        raise
    await sync_to_async(usage_record)(**usage, reply=reply)
    return reply
