"""Example (docs/integration/using-the-llm-client.md): summarize a text, with one usage row a call.

``summarize`` waits for the whole answer; ``summarize_streaming`` hands the text so far to a callback each time
more arrives (a cog would edit a Discord message with it, as ``botcore.replying.StreamedReply`` does). Without a
``model``, the registry's default is used: ``LLM_DEFAULT_MODEL`` if its provider has a key, else the offline model.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async

from llm import registry
from llm.client import LLMRequest, Reply, generate, stream
from llm.errors import LLMError
from llm.models import Usage
from llm.usage import usage_record

INSTRUCTIONS = "Summarize the user's text in at most {words} words. Answer with the summary only."


def summary_request(text: str, *, model: str | None = None, max_words: int = 60) -> LLMRequest:
    return LLMRequest(
        model=model or registry.default_model_id(),
        messages=[
            {"role": "system", "content": INSTRUCTIONS.format(words=max_words)},
            {"role": "user", "content": text},
        ],
        temperature=0.2,
        max_tokens=max_words * 3,  # about 1.3 tokens a word, with room to spare; never unbounded
    )


async def _record(usage: dict[str, Any], **outcome: Any) -> None:
    # usage_record is plain ORM code: from async code it runs through sync_to_async. (A cog that must not wait
    # for the write uses usage_record_later(**usage, ...) instead.)
    await sync_to_async(usage_record)(**usage, **outcome)


async def summarize(
    text: str,
    *,
    model: str | None = None,
    guild_pk: int | None = None,
    user_id: int | None = None,
    source: str = Usage.Source.SLASH,
) -> Reply:
    """The summary of ``text``. Raises ``LLMError`` (after recording it) when the model cannot answer."""
    request = summary_request(text, model=model)
    usage = {
        "guild_pk": guild_pk,
        "channel_id": None,
        "user_id": user_id,
        "model": request.model,
        "source": source,
    }
    try:
        reply = await generate(request)
    except LLMError as exc:
        await _record(usage, error=exc)
        raise
    await _record(usage, reply=reply)
    return reply


async def summarize_streaming(
    text: str,
    on_text: Callable[[str], Awaitable[None]],
    *,
    model: str | None = None,
    guild_pk: int | None = None,
    user_id: int | None = None,
    source: str = Usage.Source.SLASH,
) -> Reply:
    """Like ``summarize``, but ``on_text`` gets the summary so far each time more of it arrives."""
    request = summary_request(text, model=model)
    usage = {
        "guild_pk": guild_pk,
        "channel_id": None,
        "user_id": user_id,
        "model": request.model,
        "source": source,
    }
    so_far = ""
    try:
        # ``async with`` closes the provider's connection even if on_text raises half-way.
        async with stream(request) as deltas:
            async for delta in deltas:
                so_far += delta
                await on_text(so_far)
            reply = deltas.reply  # tokens, cost and latency: set once the stream is exhausted
    except LLMError as exc:
        await _record(usage, error=exc)
        raise
    await _record(usage, reply=reply)
    return reply
