"""The one way Parley calls a language model.

    reply = await generate(LLMRequest(model="openai/gpt-4o-mini", messages=[...]))

    async with stream(request) as deltas:     # or plain `async for`; the context manager closes early exits
        async for delta in deltas:
            ...                               # text pieces, in order
    reply = deltas.reply                      # set once the iteration has finished

Offline models (``offline/...``) are answered by :mod:`llm.offline` without importing litellm; other models go
through :mod:`llm.providers` in the bot, and through its child process (:mod:`llm.runner`) anywhere else. Most callers do not call this module directly but :func:`llm.answering.answer`,
which adds the prompt, the limits and the usage row.

Failures: 429, 5xx, connection errors and timeouts are retried ``LLM_MAX_RETRIES`` times with exponential backoff
(our own loop: litellm and the OpenAI SDK are told not to retry, so attempts are counted in one place); then
``request.fallback_model``, if set and its provider is configured, gets one attempt, whatever the failure was.
What is still failing raises an :class:`~llm.errors.LLMError` subclass carrying ``kind``, ``model``,
``attempts`` and ``latency_ms``. A stream is retried only until its first text arrives; after that an error
is raised from the iteration, since the caller may already have shown the partial text.

``LLM_TIMEOUT_SECONDS`` bounds each attempt of :func:`generate`, and for a stream the wait for the first text
and every gap between pieces (a long answer that keeps flowing is not cut off).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from decimal import Decimal
from types import TracebackType
from typing import Protocol, TypeVar

from llm import offline, providers, registry, runner
from llm.errors import LLMError, LLMProviderError
from llm.providers import (
    backoff_seconds,
    completion_kwargs,
    cost,
    estimate_input_tokens,
    max_retries,
    unusable,
    warm_import,
)
from llm.reasoning import ThinkSplitter
from llm.request import LLMRequest, Reply

__all__ = ["LLMRequest", "Reply", "ReplyStream", "generate", "stream", "warm_import"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A provider's Retry-After is honoured up to this many seconds; longer waits are better spent on the fallback.
MAX_RETRY_AFTER_SECONDS = 10.0


def _backoff_delay(retry: int, error: LLMError) -> float:
    delay = backoff_seconds() * (2**retry)
    if error.retry_after is not None:
        delay = max(delay, min(error.retry_after, MAX_RETRY_AFTER_SECONDS))
    # A little jitter so shards that hit the same 429 do not come back in lockstep.
    return delay * random.uniform(1.0, 1.25)


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


async def _call(
    request: LLMRequest, started: float, once: Callable[[str], Awaitable[T]]
) -> tuple[T, str, int]:
    """``once(model)`` with retries, then the fallback model once. Returns (result, model, attempts)."""
    attempts = 0

    async def attempt(model: str, tries: int) -> T:
        nonlocal attempts
        problem = unusable(model, request.keys)
        if problem is not None:
            raise problem
        for retry in range(tries):
            attempts += 1
            try:
                return await once(model)
            except LLMError as exc:
                if (refused := _refused_key(request, model, exc)) is not None:
                    raise refused from exc
                if not exc.retryable or retry + 1 == tries:
                    raise
                delay = _backoff_delay(retry, exc)
                logger.warning(
                    "LLM %s failed (%s: %s), retry %d/%d in %.2f s",
                    model,
                    exc.kind,
                    exc.message,
                    retry + 1,
                    tries - 1,
                    delay,
                )
                await asyncio.sleep(delay)
        raise AssertionError("unreachable: the last try returns or raises")

    fallback = request.fallback_model
    try:
        try:
            return await attempt(request.model, max_retries() + 1), request.model, attempts
        except LLMError as primary:
            if not fallback or fallback == request.model:
                raise
            problem = unusable(fallback, request.keys)
            if problem is not None:  # the primary's failure is the story to tell
                logger.warning("LLM fallback %s is unusable: %s", fallback, problem.message)
                raise
            logger.warning("LLM %s failed (%s), falling back to %s", request.model, primary.kind, fallback)
            try:
                return await attempt(fallback, 1), fallback, attempts
            except LLMError as exc:
                raise exc from primary
    except LLMError as exc:
        exc.attempts = attempts
        exc.latency_ms = _elapsed_ms(started)
        raise


def _refused_key(request: LLMRequest, model: str, error: LLMError) -> LLMError | None:
    """A 401 to the server's own key: the provider refuses that key. Noted on the request for llm.answering to
    report (once), and told to the asker in words that send them to the server's owner. (A 403 is not taken for
    it: providers also answer 403 for a model the key may not use, or a region they do not serve.)"""
    provider = registry.provider_of(model)
    if error.status_code != 401 or provider is None or provider not in request.keys.own:
        return None
    request.refused_keys[provider] = error.status_code
    label = registry.provider_label(provider)
    return LLMProviderError(
        f"{label} refused this server's own API key (HTTP {error.status_code}): {error.message}",
        model=model,
        status_code=error.status_code,
        retryable=False,
        notice=f"{label} refused this server's API key. A server owner can set a new one in the Parley dashboard "
        "(Keys).",
    )


# --- generate --------------------------------------------------------------------------------------------------
async def generate(request: LLMRequest) -> Reply:
    """The whole answer to ``request``; raises an :class:`LLMError` subclass when it cannot get one."""
    started = time.monotonic()

    async def once(model: str) -> Reply:
        if registry.provider_of(model) == "offline":
            answer = offline.respond(request.messages, request.max_tokens)
            return Reply(
                text=answer.text,
                model=model,
                input_tokens=answer.input_tokens,
                output_tokens=answer.output_tokens,
                cost_usd=Decimal(0),
                latency_ms=0,
                finish_reason=answer.finish_reason,
            )
        kwargs = completion_kwargs(model, request, streaming=False)
        done = await (providers.complete if providers.inline() else runner.complete)(model, kwargs)
        splitter = ThinkSplitter()
        text = splitter.feed(done.text) + splitter.flush()
        if done.reasoning:  # litellm itself takes some <think> blocks out, and leaves the blank lines behind
            text = text.lstrip()
        input_tokens = done.input_tokens or estimate_input_tokens(request.messages)
        output_tokens = done.output_tokens or offline.approx_tokens(done.text)
        return Reply(
            text=text,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=done.cost_usd if done.cost_usd is not None else cost(model, input_tokens, output_tokens),
            latency_ms=0,
            finish_reason=done.finish_reason,
            reasoning=done.reasoning + splitter.thought,
            reasoning_tokens=_reasoning_tokens(done.reasoning_tokens, done.reasoning + splitter.thought),
        )

    reply, _, attempts = await _call(request, started, once)
    reply.latency_ms = _elapsed_ms(started)
    reply.attempts = attempts
    return reply


def _reasoning_tokens(counted: int | None, thinking: str) -> int:
    """The provider's count of reasoning tokens, or an estimate from the thinking's text (``<think>`` blocks,
    which providers count as ordinary output)."""
    if counted:  # litellm reports 0 when the provider gave no count
        return counted
    return offline.approx_tokens(thinking) if thinking.strip() else 0


# --- stream ----------------------------------------------------------------------------------------------------
class _Source(Protocol):
    input_tokens: int | None
    output_tokens: int | None
    finish_reason: str | None
    reasoning: str
    reasoning_tokens: int | None

    @property
    def cost_usd(self) -> Decimal | None: ...

    def deltas(self) -> AsyncGenerator[str, None]: ...

    async def aclose(self) -> None: ...


class _OfflineSource:
    def __init__(self, request: LLMRequest) -> None:
        answer = offline.respond(request.messages, request.max_tokens)
        self._text = answer.text
        self.input_tokens: int | None = answer.input_tokens
        self.output_tokens: int | None = answer.output_tokens
        self.finish_reason: str | None = answer.finish_reason
        self.cost_usd: Decimal | None = Decimal(0)
        self.reasoning = ""
        self.reasoning_tokens: int | None = None

    async def deltas(self) -> AsyncGenerator[str, None]:
        # The answer is complete the moment it exists: word-sized deltas would only cost loop turns and edits.
        yield self._text

    async def aclose(self) -> None:
        return None


class ReplyStream:
    """An async iterator of text deltas for one request; :attr:`reply` is available once it is exhausted.

    Nothing is sent until the first ``__anext__``. Leaving the loop early is fine inside ``async with`` (or
    after calling :meth:`aclose`), which closes the provider's connection.
    """

    def __init__(self, request: LLMRequest) -> None:
        self.request = request
        self._reply: Reply | None = None
        self._iterator: AsyncIterator[str] | None = None
        self._source: _Source | None = None
        self._splitter = ThinkSplitter()

    @property
    def reply(self) -> Reply:
        if self._reply is None:
            raise RuntimeError("ReplyStream.reply is set only after the stream has been read to the end")
        return self._reply

    def __aiter__(self) -> ReplyStream:
        return self

    async def __anext__(self) -> str:
        if self._iterator is None:
            self._iterator = self._run()
        return await self._iterator.__anext__()

    async def __aenter__(self) -> ReplyStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        iterator, self._iterator = self._iterator, None
        if iterator is not None and hasattr(iterator, "aclose"):
            await iterator.aclose()
        if self._source is not None:
            await self._source.aclose()

    async def _open(self, model: str) -> _Source:
        if registry.provider_of(model) == "offline":
            return _OfflineSource(self.request)
        kwargs = completion_kwargs(model, self.request, streaming=True)
        if providers.inline():
            return await providers.LiteLLMStream(model, kwargs).open()
        return await runner.RunnerStream(model, kwargs).open()

    @property
    def reasoning(self) -> str:
        """The model's thinking so far (a reasoning field, or ``<think>`` blocks taken out of the text)."""
        provided = self._source.reasoning if self._source is not None else ""
        return provided + self._splitter.thought

    async def _run(self) -> AsyncIterator[str]:
        started = time.monotonic()
        source, model, attempts = await _call(self.request, started, self._open)
        self._source = source
        raw: list[str] = []
        shown: list[str] = []
        first_token_ms: int | None = None
        try:
            async with contextlib.aclosing(source.deltas()) as deltas:
                async for piece in deltas:
                    raw.append(piece)
                    text = self._splitter.feed(piece)
                    if not shown and self.reasoning:  # the answer after thinking starts without blank lines
                        text = text.lstrip()
                    if text:
                        if first_token_ms is None:
                            first_token_ms = _elapsed_ms(started)
                        shown.append(text)
                        yield text
            if rest := self._splitter.flush():
                shown.append(rest)
                yield rest
        except LLMError as exc:
            exc.attempts = attempts
            exc.latency_ms = _elapsed_ms(started)
            raise
        finally:
            await source.aclose()
        input_tokens = source.input_tokens or estimate_input_tokens(self.request.messages)
        output_tokens = source.output_tokens or offline.approx_tokens("".join(raw))
        self._reply = Reply(
            text="".join(shown),
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=source.cost_usd
            if source.cost_usd is not None
            else cost(model, input_tokens, output_tokens),
            latency_ms=_elapsed_ms(started),
            first_token_ms=first_token_ms,
            finish_reason=source.finish_reason,
            attempts=attempts,
            reasoning=self.reasoning,
            reasoning_tokens=_reasoning_tokens(source.reasoning_tokens, self.reasoning),
        )


def stream(request: LLMRequest) -> ReplyStream:
    """Stream the answer to ``request``: iterate for text deltas, then read ``.reply`` (see the module doc)."""
    return ReplyStream(request)
