"""The one way Parley calls a language model.

    reply = await generate(LLMRequest(model="openai/gpt-4o-mini", messages=[...]))

    async with stream(request) as deltas:     # or plain `async for`; the context manager closes early exits
        async for delta in deltas:
            ...                               # text pieces, in order
    reply = deltas.reply                      # set once the iteration has finished

Offline models (``offline/...``) are answered by :mod:`llm.offline` without importing litellm; other models go
through :mod:`llm.providers`. Most callers do not call this module directly but :func:`llm.answering.answer`,
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
from typing import Any, Protocol, TypeVar

from llm import offline, registry
from llm.errors import LLMError, LLMProviderError
from llm.providers import (
    backoff_seconds,
    completion_kwargs,
    cost,
    estimate_input_tokens,
    litellm_async,
    map_error,
    max_retries,
    timeout_seconds,
    unusable,
    warm_import,
)
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
        problem = unusable(model)
        if problem is not None:
            raise problem
        for retry in range(tries):
            attempts += 1
            try:
                return await once(model)
            except LLMError as exc:
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
            problem = unusable(fallback)
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
        lm = await litellm_async()
        try:
            async with asyncio.timeout(timeout_seconds()):
                response = await lm.acompletion(**completion_kwargs(model, request, streaming=False))
        except Exception as exc:
            raise map_error(exc, model) from exc
        if not response.choices:
            raise LLMProviderError("The provider returned no choices", model=model)
        choice = response.choices[0]
        text = choice.message.content or ""
        usage = getattr(response, "usage", None)
        input_tokens = int(getattr(usage, "prompt_tokens", 0) or 0) or estimate_input_tokens(request.messages)
        output_tokens = int(getattr(usage, "completion_tokens", 0) or 0) or offline.approx_tokens(text)
        return Reply(
            text=text,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost(model, input_tokens, output_tokens, response),
            latency_ms=0,
            finish_reason=choice.finish_reason,
        )

    reply, _, attempts = await _call(request, started, once)
    reply.latency_ms = _elapsed_ms(started)
    reply.attempts = attempts
    return reply


# --- stream ----------------------------------------------------------------------------------------------------
class _Source(Protocol):
    input_tokens: int | None
    output_tokens: int | None
    finish_reason: str | None

    def deltas(self) -> AsyncGenerator[str, None]: ...

    async def aclose(self) -> None: ...


class _OfflineSource:
    def __init__(self, request: LLMRequest) -> None:
        answer = offline.respond(request.messages, request.max_tokens)
        self._text = answer.text
        self.input_tokens: int | None = answer.input_tokens
        self.output_tokens: int | None = answer.output_tokens
        self.finish_reason: str | None = answer.finish_reason

    async def deltas(self) -> AsyncGenerator[str, None]:
        # The answer is complete the moment it exists: word-sized deltas would only cost loop turns and edits.
        yield self._text

    async def aclose(self) -> None:
        return None


class _LiteLLMSource:
    """A litellm stream, opened and read up to its first text so that failures before it can be retried."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.finish_reason: str | None = None
        self._wrapper: Any = None
        self._chunks: AsyncIterator[Any] | None = None
        self._buffered: list[str] = []
        self._ended = False

    async def open(self, request: LLMRequest) -> _LiteLLMSource:
        lm = await litellm_async()
        try:
            async with asyncio.timeout(timeout_seconds()):
                self._wrapper = await lm.acompletion(**completion_kwargs(self.model, request, streaming=True))
                self._chunks = self._wrapper.__aiter__()
                while not self._buffered:
                    text = self._take(await self._chunks.__anext__())
                    if text:
                        self._buffered.append(text)
        except StopAsyncIteration:
            self._ended = True  # an empty answer
        except Exception as exc:
            await self.aclose()
            raise map_error(exc, self.model) from exc
        return self

    def _take(self, chunk: Any) -> str:
        """Record the chunk's usage and finish reason; return its text."""
        usage = getattr(chunk, "usage", None)
        if usage is not None and getattr(usage, "prompt_tokens", None) is not None:
            self.input_tokens = int(usage.prompt_tokens)
            self.output_tokens = int(usage.completion_tokens or 0)
        if not chunk.choices:
            return ""
        choice = chunk.choices[0]
        if choice.finish_reason:
            self.finish_reason = choice.finish_reason
        return getattr(choice.delta, "content", None) or ""

    async def deltas(self) -> AsyncGenerator[str, None]:
        buffered, self._buffered = self._buffered, []
        for text in buffered:
            yield text
        if self._ended or self._chunks is None:
            return
        while True:
            try:
                chunk = await asyncio.wait_for(self._chunks.__anext__(), timeout_seconds())
            except StopAsyncIteration:
                return
            except Exception as exc:
                raise map_error(exc, self.model) from exc
            text = self._take(chunk)
            if text:
                yield text

    async def aclose(self) -> None:
        wrapper, self._wrapper = self._wrapper, None
        if wrapper is not None and hasattr(wrapper, "aclose"):
            try:
                await wrapper.aclose()
            except Exception:  # closing is best effort: the answer (or the error) is what matters
                logger.debug("closing the litellm stream failed", exc_info=True)


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
        return await _LiteLLMSource(model).open(self.request)

    async def _run(self) -> AsyncIterator[str]:
        started = time.monotonic()
        source, model, attempts = await _call(self.request, started, self._open)
        self._source = source
        pieces: list[str] = []
        first_token_ms: int | None = None
        try:
            async with contextlib.aclosing(source.deltas()) as deltas:
                async for text in deltas:
                    if first_token_ms is None:
                        first_token_ms = _elapsed_ms(started)
                    pieces.append(text)
                    yield text
        except LLMError as exc:
            exc.attempts = attempts
            exc.latency_ms = _elapsed_ms(started)
            raise
        finally:
            await source.aclose()
        text = "".join(pieces)
        input_tokens = source.input_tokens or estimate_input_tokens(self.request.messages)
        output_tokens = source.output_tokens or offline.approx_tokens(text)
        is_offline = registry.provider_of(model) == "offline"
        self._reply = Reply(
            text=text,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=Decimal(0) if is_offline else cost(model, input_tokens, output_tokens),
            latency_ms=_elapsed_ms(started),
            first_token_ms=first_token_ms,
            finish_reason=source.finish_reason,
            attempts=attempts,
        )


def stream(request: LLMRequest) -> ReplyStream:
    """Stream the answer to ``request``: iterate for text deltas, then read ``.reply`` (see the module doc)."""
    return ReplyStream(request)
