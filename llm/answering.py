"""The one path from a question to an answer, shared by chat, ``/ask`` and the playground.

    outcome = await answer(settings=effective, turns=[...], asker=Asker(...), gate=gate, deliver=send)

It builds the messages (system prompt, turns with speaker names and attachments, trimmed to a token budget),
reserves the call at the limit gate, calls the model (with retries and the fallback model, streamed when asked),
hands the text to ``deliver`` and records the outcome in the question's usage row, whatever happens:

- answered: the reply's tokens and cost;
- refused by a limit (``outcome.notice`` says why; ``notify`` is False when this user was already told);
- failed: the provider's error, our database being unreachable for the limits, or the text not delivered;
- a stream cut after some text: ``deliver`` still gets a complete text, ending with a one-line note, and when a
  fallback model is set the question is answered again with it (a second delivery; the one usage row carries
  what both attempts spent);
- cancelled (shutdown): recorded as interrupted before the cancellation goes on.

A provider that refuses the server's own API key (llm/keys.py) is reported once: the first question to meet the
refusal marks the key and names its provider in ``outcome.keys_reported``, for the caller to tell the owner.

The caller shows ``outcome.notice`` when there is one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Literal

from asgiref.sync import sync_to_async
from django.db import DatabaseError

from config.probes import database_call
from llm import offline, reasoning, registry
from llm.client import generate, stream
from llm.errors import GENERIC_NOTICE, LLMError, user_notice
from llm.keys import INSTANCE_KEYS, Keys, key_refused
from llm.limits import LimitGate, Limits, Refusal, Reservation, reserve
from llm.models import Usage
from llm.prompting import Turn, build_messages
from llm.providers import estimate_input_tokens, unusable
from llm.request import LLMRequest, Reply
from llm.usage import usage_fields, usage_save, usage_save_later

logger = logging.getLogger(__name__)

Deliver = Callable[[AsyncIterator[str]], Awaitable[object]]
CUT_NOTE = "\n\n*(The answer was cut off: the model stopped responding.)*"
CUT_NOTE_RETRYING = "\n\n*(The answer was cut off: the model stopped responding. Trying another model.)*"
DATABASE_NOTICE = (
    "I can't check this server's limits right now, so I won't call the model. Please try again soon."
)
UNDELIVERED_NOTICE = "Sorry, Discord did not take my answer. Please try again."


class DeliveryFailed(Exception):
    """Raised by a ``deliver`` that could not get the text to the user (after its own retries)."""


@dataclass(frozen=True)
class AnswerSettings:
    """The settings an answer is given under (``guilds.effective.Effective`` adds the bot's own)."""

    guild_pk: int | None  # None in direct messages: the instance's DM limits apply
    system_prompt: str
    model: str
    fallback_model: str
    temperature: float
    max_output_tokens: int
    limits: Limits
    reasoning_display: str = field(default=reasoning.HIDDEN, kw_only=True)  # llm.reasoning: hidden or spoiler
    keys: Keys = field(default=INSTANCE_KEYS, kw_only=True)  # llm.keys: the server's own, the instance's


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
    notice: str = ""  # for the asker: why there is no (complete) answer
    notify: bool = True  # False for a refusal whose notice this asker has already seen
    # Providers that refused the server's own key, reported by this question first: the caller tells the owner.
    keys_reported: tuple[str, ...] = ()
    usage_outcome: str = ""  # the outcome the question's usage row records (llm.models.Usage.Outcome)


@dataclass
class _Relay:
    """The stream's text on its way to ``deliver``: a failure after some text ends it with a note instead; with
    ``thinking``, the model's thinking goes first, as a spoiler (its text is complete once the answer starts)."""

    note: str
    thinking: Callable[[], str] | None = None
    parts: list[str] = field(default_factory=list)
    error: LLMError | None = None

    async def pieces(self, deltas: AsyncIterator[str]) -> AsyncIterator[str]:
        try:
            async for piece in deltas:
                if (
                    not self.parts
                    and self.thinking is not None
                    and (shown := reasoning.spoiler(self.thinking()))
                ):
                    yield shown
                self.parts.append(piece)
                yield piece
        except LLMError as exc:
            if not self.parts:
                raise
            self.error = exc
            yield self.note


async def _whole(text: str) -> AsyncIterator[str]:
    yield text


async def _drain(deltas: AsyncIterator[str]) -> None:
    async for _ in deltas:
        pass


def max_cost(request: LLMRequest) -> Decimal:
    """The most ``request`` can cost: its prompt and ``max_tokens`` at its model's price, plus the same at the
    fallback's (a stream cut short is paid for, then answered again by the fallback)."""
    prompt = estimate_input_tokens(request.messages)
    models = [request.model, *([request.fallback_model] if request.fallback_model else [])]
    return sum(
        (registry.estimate_cost(model, prompt, request.max_tokens or 0) for model in models), Decimal(0)
    )


class _Call:
    """One question's usage row: written once, at the end, whatever the end was.

    A stream cut short and answered again by the fallback model stays one question: the row is the fallback's,
    with the tokens and cost of the cut attempt added (``carried``), so per-user limits count the question once."""

    def __init__(self, usage: dict[str, Any], *, later: bool) -> None:
        self.usage = usage
        self.later = later
        self.reserved_pk: int | None = None
        self.recorded = False
        self.outcome = ""  # what the row records
        self.carried = {"input_tokens": 0, "output_tokens": 0, "cost_usd": Decimal(0)}

    def _row(self, result: dict[str, Any]) -> dict[str, Any]:
        row = usage_fields(**self.usage, **result)
        for name, value in self.carried.items():
            if value:
                row[name] = row.get(name, 0) + value
        if self.reserved_pk is not None:
            row["pk"] = self.reserved_pk
        return row

    async def record(self, **result: Any) -> None:
        self.recorded = True
        row = self._row(result)
        self.outcome = row["outcome"]
        if self.later:
            usage_save_later(row)
        else:
            await sync_to_async(usage_save)(row)

    def carry(self, spent: dict[str, Any]) -> None:
        for name, value in spent.items():
            self.carried[name] += value

    async def record_interrupted(self, request: LLMRequest, text: str) -> None:
        """Runs while the task is being cancelled (a shutdown, a closed browser): the row says so."""
        if self.recorded:
            return
        self.recorded = True
        row = self._row({"outcome": Usage.Outcome.INTERRUPTED, **_spent(request, text)})
        if self.later:
            usage_save_later(row)  # the bot writes its buffer at shutdown
        else:
            with contextlib.suppress(Exception):  # the web request is gone; nothing else to tell
                await asyncio.shield(sync_to_async(usage_save)(row))


def _spent(request: LLMRequest, text: str) -> dict[str, Any]:
    """What a call that ended without a reply used, estimated from the text that arrived."""
    input_tokens = estimate_input_tokens(request.messages)
    output_tokens = offline.approx_tokens(text)
    cost = registry.estimate_cost(request.model, input_tokens, output_tokens)
    return {"input_tokens": input_tokens, "output_tokens": output_tokens, "cost_usd": cost}


async def _reserve(
    gate: LimitGate, settings: AnswerSettings, asker: Asker, usage: dict[str, Any], request: LLMRequest
) -> Refusal | Reservation | None:
    """The gate's reservation (``config.probes.database_call``: retried, and refused at once while the database
    is known to be away); None when no limit applies."""
    if not settings.limits.any:
        return None
    fields, most = usage_fields(**usage), max_cost(request)
    async with gate.serial:
        return await database_call(
            lambda: reserve(
                guild_pk=settings.guild_pk,
                user_id=asker.user_id,
                limits=settings.limits,
                fields=fields,
                max_cost=most,
            ),
            what="limits",
        )


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

    ``turns`` may be a coroutine function (the bot's reply chain and attachments are fetched through it).
    ``deliver`` receives the text as an async iterator (pieces as they arrive when ``streaming``, else the whole
    answer at once) and raises ``DeliveryFailed`` when it cannot get it to the user. ``record_later`` batches the
    usage row (the bot); False writes it before returning.
    """
    usage: dict[str, Any] = {
        "guild_pk": settings.guild_pk,
        "channel_id": asker.channel_id,
        "user_id": asker.user_id,
        "model": settings.model,
        "source": asker.source,
    }
    call = _Call(usage, later=record_later)
    try:
        if callable(turns):
            turns = await turns()
        messages = build_messages(system_prompt=settings.system_prompt, turns=turns)
    except Exception:
        # The conversation could not be gathered (a reply chain or an attachment that broke something): the
        # model is not called, but the asker hears it and the question has its row.
        logger.exception("the conversation could not be gathered")
        await call.record(outcome=Usage.Outcome.PROVIDER_ERROR)
        return Outcome("failed", notice=GENERIC_NOTICE, usage_outcome=call.outcome)
    request = LLMRequest(
        model=settings.model,
        messages=messages,
        temperature=settings.temperature,
        max_tokens=settings.max_output_tokens,
        fallback_model=settings.fallback_model or None,
        keys=settings.keys,
    )
    # Shielded: once the reservation's row is written, a cancellation must not lose track of it.
    reserving = asyncio.ensure_future(_reserve(gate, settings, asker, usage, request))
    try:
        reserved = await asyncio.shield(reserving)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            done = await asyncio.wait_for(reserving, timeout=10)
            if isinstance(done, Reservation):
                call.reserved_pk = done.usage_pk
        await call.record_interrupted(request, "")
        raise
    except DatabaseError:
        await call.record(outcome=Usage.Outcome.UNCHECKED)
        return Outcome("failed", notice=DATABASE_NOTICE, usage_outcome=call.outcome)
    if isinstance(reserved, Refusal):
        await call.record(outcome=reserved.outcome)
        return Outcome(
            "refused",
            refusal=reserved,
            notice=reserved.notice,
            notify=gate.should_notify(reserved),
            usage_outcome=call.outcome,
        )
    if isinstance(reserved, Reservation):
        call.reserved_pk = reserved.usage_pk
    show = settings.reasoning_display == reasoning.SPOILER
    outcome = await _call_model(call, request, deliver, streaming=streaming, show_reasoning=show)
    outcome = replace(outcome, usage_outcome=call.outcome)
    return await _report_refused_keys(settings, request, outcome)


async def _report_refused_keys(settings: AnswerSettings, request: LLMRequest, outcome: Outcome) -> Outcome:
    """The server's own keys a provider refused during the call, marked as such (``llm.keys.key_refused``);
    those this question reported first are named on the outcome, so that the owner is told once."""
    reported = []
    for provider, status in request.refused_keys.items():
        key = settings.keys.own.get(provider)
        if settings.guild_pk is None or key is None or key.refused:  # refused: reported before this snapshot
            continue
        try:
            first = await sync_to_async(key_refused)(
                guild_pk=settings.guild_pk, provider=provider, set_at=key.set_at, status=status
            )
        except DatabaseError as exc:  # the next refusal reports it
            logger.warning(
                "refused %s key of guild %s not marked: %s", provider, settings.guild_pk, type(exc).__name__
            )
            continue
        if first:
            logger.warning(
                "%s refused the own key of guild %s (HTTP %s)", provider, settings.guild_pk, status
            )
            reported.append(provider)
    return replace(outcome, keys_reported=tuple(reported)) if reported else outcome


async def _call_model(
    call: _Call, request: LLMRequest, deliver: Deliver | None, *, streaming: bool, show_reasoning: bool
) -> Outcome:
    fallback = request.fallback_model
    can_retry = bool(fallback and fallback != request.model and unusable(fallback, request.keys) is None)
    relay = _Relay(CUT_NOTE_RETRYING if can_retry else CUT_NOTE)
    try:
        if streaming:
            async with stream(request) as deltas:
                relay.thinking = (lambda: deltas.reasoning) if show_reasoning else None
                await (deliver or _drain)(relay.pieces(deltas))
            if relay.error is None:
                reply = deltas.reply
        else:
            reply = await generate(request)
            relay.parts.append(reply.text)
            if deliver is not None:
                shown = reasoning.spoiler(reply.reasoning) if show_reasoning else ""
                await deliver(_whole(shown + reply.text))
    except LLMError as exc:
        await call.record(error=exc)
        return Outcome("failed", error=exc, notice=user_notice(exc))
    except asyncio.CancelledError:
        await call.record_interrupted(request, "".join(relay.parts))
        raise
    except DeliveryFailed as exc:
        logger.warning("answer not delivered: %s", exc)
        await call.record(outcome=Usage.Outcome.UNDELIVERED, **_spent(request, "".join(relay.parts)))
        return Outcome("failed", notice=UNDELIVERED_NOTICE)
    except Exception:
        # Whatever else went wrong (a bug, an unexpected library error): the question still gets its row.
        logger.exception("answer failed")
        await call.record(outcome=Usage.Outcome.PROVIDER_ERROR, **_spent(request, "".join(relay.parts)))
        return Outcome("failed", notice=GENERIC_NOTICE)
    if relay.error is None:
        await call.record(reply=reply)
        return Outcome("answered", reply=reply)
    if not can_retry:
        await call.record(error=relay.error, **_spent(request, "".join(relay.parts)))
        return Outcome("failed", error=relay.error)  # the note is already on the message
    assert fallback is not None
    logger.warning(
        "stream from %s cut (%s): answering again with %s", request.model, relay.error.kind, fallback
    )
    call.carry(_spent(request, "".join(relay.parts)))
    call.usage = {**call.usage, "model": fallback}
    retry = LLMRequest(
        model=fallback,
        messages=request.messages,
        temperature=request.temperature,
        max_tokens=request.max_tokens,
        keys=request.keys,
        refused_keys=request.refused_keys,  # one question: what either attempt found is reported
    )
    return await _call_model(call, retry, deliver, streaming=streaming, show_reasoning=show_reasoning)
