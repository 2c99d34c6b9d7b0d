"""The one path from a question to an answer, shared by chat, ``/ask`` and the playground.

    outcome = await answer(settings=effective, turns=[...], asker=Asker(...), gate=gate, deliver=send)

It builds the messages (system prompt, turns with speaker names and attachments, trimmed to a token budget),
passes the limit gate, calls the model (with retries and the fallback model, streamed when asked), hands the text
to ``deliver`` and records one usage row whatever happens. The caller shows ``outcome.notice`` when there is one.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from asgiref.sync import sync_to_async

from llm.client import generate, stream
from llm.errors import LLMError, user_notice
from llm.limits import LimitGate, Limits, Refusal
from llm.prompting import Turn, build_messages
from llm.request import LLMRequest, Reply
from llm.usage import usage_record, usage_record_later

logger = logging.getLogger(__name__)

Deliver = Callable[[AsyncIterator[str]], Awaitable[object]]


@dataclass(frozen=True)
class AnswerSettings:
    """The settings an answer is given under (``guilds.effective.Effective`` adds the bot's own)."""

    guild_pk: int | None  # None in direct messages: no guild budget applies
    system_prompt: str
    model: str
    fallback_model: str
    temperature: float
    max_output_tokens: int
    limits: Limits


@dataclass(frozen=True)
class Asker:
    """Who asked, where, and through what: the usage row's columns."""

    user_id: int | None  # Discord id
    channel_id: int | None
    source: str  # llm.models.Usage.Source


@dataclass(frozen=True)
class Outcome:
    status: Literal["answered", "refused", "failed"]
    reply: Reply | None = None
    error: LLMError | None = None
    refusal: Refusal | None = None
    notice: str = ""  # for the asker: why there is no answer
    notify: bool = True  # False for a refusal whose notice this asker has already seen


async def _whole(text: str) -> AsyncIterator[str]:
    yield text


async def answer(
    *,
    settings: AnswerSettings,
    turns: list[Turn] | Callable[[], Awaitable[list[Turn]]],
    asker: Asker,
    gate: LimitGate,
    deliver: Deliver | None = None,
    streaming: bool = False,
    record_later: bool = True,
) -> Outcome:
    """Answer ``turns`` under ``settings``; see the module docstring.

    ``turns`` may be a coroutine function, called only once the gate has let the question through (the bot's
    reply chain and attachments are not fetched for a refused message). ``deliver`` receives the text as an async iterator (pieces as they arrive when ``streaming``, else the whole
    answer at once). ``record_later`` batches the usage row (the bot); False writes it before returning.
    """
    usage: dict[str, Any] = {
        "guild_pk": settings.guild_pk,
        "channel_id": asker.channel_id,
        "user_id": asker.user_id,
        "model": settings.model,
        "source": asker.source,
    }

    async def record(**result: Any) -> None:
        if record_later:
            usage_record_later(**usage, **result)
        else:
            await sync_to_async(usage_record)(**usage, **result)

    if settings.guild_pk is not None:
        refusal = await gate.check(settings.guild_pk, asker.user_id, settings.limits)
        if refusal is not None:
            await record(outcome=refusal.outcome)
            return Outcome(
                "refused", refusal=refusal, notice=refusal.notice, notify=gate.should_notify(refusal)
            )
    if callable(turns):
        turns = await turns()
    request = LLMRequest(
        model=settings.model,
        messages=build_messages(system_prompt=settings.system_prompt, turns=turns),
        temperature=settings.temperature,
        max_tokens=settings.max_output_tokens,
        fallback_model=settings.fallback_model or None,
    )
    try:
        if streaming:
            async with stream(request) as deltas:
                await (deliver or _drain)(deltas)
            reply = deltas.reply
        else:
            reply = await generate(request)
            if deliver is not None:
                await deliver(_whole(reply.text))
    except LLMError as exc:
        logger.warning("LLM call failed: %s (%s)", exc.kind, exc.model)
        await record(error=exc)
        return Outcome("failed", error=exc, notice=user_notice(exc))
    await record(reply=reply)
    return Outcome("answered", reply=reply)


async def _drain(deltas: AsyncIterator[str]) -> None:
    async for _ in deltas:
        pass
