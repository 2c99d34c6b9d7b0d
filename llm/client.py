"""The one way Parley calls a language model.

    reply = await generate(LLMRequest(model="openai/gpt-4o-mini", messages=[...]))

    async with stream(request) as deltas:     # or plain `async for`; the context manager closes early exits
        async for delta in deltas:
            ...                               # text pieces, in order
    reply = deltas.reply                      # set once the iteration has finished

Offline models (``offline/...``) are answered by :mod:`llm.offline` without importing litellm. Other models go
through litellm, which is imported lazily (it costs about 7 s of CPU): call :func:`warm_import` in a thread at bot
start-up, otherwise the first call imports it in a worker thread so the event loop keeps running.

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
import importlib
import logging
import os
import random
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from importlib.metadata import version
from types import ModuleType, TracebackType
from typing import Any, Protocol, TypeVar

from django.conf import settings

from llm import offline, registry
from llm.errors import (
    LLMBadRequest,
    LLMError,
    LLMProviderError,
    LLMRateLimited,
    LLMTimeout,
    LLMUnavailable,
)

__all__ = [
    "LLMBadRequest",
    "LLMError",
    "LLMProviderError",
    "LLMRateLimited",
    "LLMRequest",
    "LLMTimeout",
    "LLMUnavailable",
    "Reply",
    "ReplyStream",
    "generate",
    "stream",
    "warm_import",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A provider's Retry-After is honoured up to this many seconds; longer waits are better spent on the fallback.
MAX_RETRY_AFTER_SECONDS = 10.0
_ERROR_MESSAGE_LIMIT = 300


@dataclass
class LLMRequest:
    model: str  # a registry id, "<provider>/<model>"
    messages: list[dict[str, Any]]  # OpenAI-style; content is a str or a list of parts (text, image_url)
    temperature: float | None = None
    max_tokens: int | None = None
    fallback_model: str | None = None
    # Who asked, for the caller's usage row; never sent to the provider.
    guild_id: int | None = None
    channel_id: int | None = None
    user_id: int | None = None


@dataclass
class Reply:
    text: str
    model: str  # the model that answered: request.fallback_model when the fallback was used
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    latency_ms: int
    first_token_ms: int | None = None  # streams only
    finish_reason: str | None = None  # "stop", "length", ...
    attempts: int = 1  # calls made, retries and the fallback included


# --- settings, read at call time -----------------------------------------------------------------------------
def _timeout_seconds() -> float:
    return float(getattr(settings, "LLM_TIMEOUT_SECONDS", 60.0))


def _connect_timeout_seconds() -> float:
    return min(float(getattr(settings, "LLM_CONNECT_TIMEOUT_SECONDS", 10.0)), _timeout_seconds())


def _max_retries() -> int:
    return int(getattr(settings, "LLM_MAX_RETRIES", 2))


def _backoff_seconds() -> float:
    return float(getattr(settings, "LLM_RETRY_BACKOFF_SECONDS", 0.5))


# --- litellm, imported once and lazily -----------------------------------------------------------------------
_litellm_module: ModuleType | None = None
_import_lock = threading.Lock()


def _litellm() -> ModuleType:
    """litellm, imported and configured on first use (blocking: about 7 s of CPU)."""
    global _litellm_module
    if _litellm_module is None:
        with _import_lock:
            if _litellm_module is None:
                _litellm_module = _import_litellm()
    return _litellm_module


def _import_litellm() -> ModuleType:
    # Use the price map bundled with the package instead of fetching one from GitHub at import time...
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    # ...and skip litellm's other fetches (tokenizers, beta-header lists) too: the bot may have no internet.
    os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
    # In its default "DEV" mode litellm loads ./.env into os.environ at import; our settings own the environment.
    os.environ.setdefault("LITELLM_MODE", "PRODUCTION")
    started = time.process_time()
    litellm: Any = importlib.import_module("litellm")
    litellm.suppress_debug_info = True  # no "Give Feedback / Get Help" banners on every exception
    litellm.drop_params = True  # one request shape for every provider; unsupported params are dropped
    litellm.turn_off_message_logging = True  # message text stays out of litellm's logging objects
    # Nothing leaves the process besides the model call itself. (litellm 1.110 has no SDK telemetry flag: its
    # usage telemetry lives in the proxy, off unless LITELLM_TELEMETRY_* is set.)
    for name in (
        "callbacks",
        "input_callback",
        "success_callback",
        "failure_callback",
        "service_callback",
        "_async_input_callback",
        "_async_success_callback",
        "_async_failure_callback",
    ):
        setattr(litellm, name, [])
    logger.info("litellm %s imported in %.1f s of CPU", version("litellm"), time.process_time() - started)
    return litellm


async def _litellm_async() -> ModuleType:
    if _litellm_module is not None:
        return _litellm_module
    # The import would block the event loop for seconds (and Discord's heartbeat with it).
    return await asyncio.to_thread(_litellm)


def warm_import() -> bool:
    """Import litellm now if any provider has an API key (run in a thread at bot start-up). True if imported."""
    if not any(registry.provider_available(p.id) for p in registry.providers() if p.id != "offline"):
        return False
    _litellm()
    return True


# --- errors ----------------------------------------------------------------------------------------------------
def _unusable(model: str) -> LLMError | None:
    """The error that makes calling ``model`` pointless, if any."""
    provider = registry.provider_of(model)
    if provider is None:
        return LLMBadRequest(f"Unknown model {model!r}", model=model)
    reason = registry.unavailable_reason(provider)
    return LLMUnavailable(reason, model=model) if reason is not None else None


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= _ERROR_MESSAGE_LIMIT else text[: _ERROR_MESSAGE_LIMIT - 1] + "…"


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        value = headers.get("retry-after")
        return float(value) if value is not None else None
    except (TypeError, ValueError):  # an HTTP date: rare enough to fall back to our own backoff
        return None


def _map_error(exc: BaseException, model: str) -> LLMError:
    """Our typed error for whatever litellm (or our own timeout) raised."""
    if isinstance(exc, LLMError):
        return exc
    if isinstance(exc, TimeoutError):
        return LLMTimeout(f"No answer within {_timeout_seconds():g} s", model=model)
    lm = _litellm_module
    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    message = _short(exc)

    def caught(*names: str) -> bool:
        return lm is not None and isinstance(exc, tuple(getattr(lm, n) for n in names))

    # Order matters: litellm's Timeout is an APIConnectionError, and its context-window, content-policy and
    # payment errors are BadRequestErrors.
    if caught("Timeout") or status == 408:
        return LLMTimeout(f"No answer within {_timeout_seconds():g} s", model=model, status_code=status)
    if caught("RateLimitError") or status == 429:
        return LLMRateLimited(message, model=model, status_code=status, retry_after=_retry_after(exc))
    if caught("AuthenticationError", "PermissionDeniedError", "NotFoundError", "PaymentRequiredError"):
        return LLMProviderError(message, model=model, status_code=status, retryable=False)
    if caught("BadRequestError", "UnprocessableEntityError"):
        return LLMBadRequest(message, model=model, status_code=status)
    if caught("APIConnectionError", "APIError") or (status is not None and status >= 500):
        return LLMProviderError(message, model=model, status_code=status, retryable=True)
    if status is not None and 400 <= status < 500:
        return LLMBadRequest(message, model=model, status_code=status)
    # Anything else (an unexpected exception inside litellm) is not worth repeating.
    return LLMProviderError(message, model=model, status_code=status, retryable=False)


def _backoff_delay(retry: int, error: LLMError) -> float:
    delay = _backoff_seconds() * (2**retry)
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
        problem = _unusable(model)
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
            return await attempt(request.model, _max_retries() + 1), request.model, attempts
        except LLMError as primary:
            if not fallback or fallback == request.model:
                raise
            problem = _unusable(fallback)
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


def _completion_kwargs(model: str, request: LLMRequest, *, streaming: bool) -> dict[str, Any]:
    import httpx  # a litellm dependency; only needed once litellm is

    provider = registry.provider_of(model)
    assert provider is not None
    config = registry.provider_config(provider)
    kwargs: dict[str, Any] = {
        "model": model,
        "messages": request.messages,
        "api_key": config["api_key"],
        # litellm's own default is 6,000 s; its "connect" part keeps a dead host from eating the whole budget.
        "timeout": httpx.Timeout(_timeout_seconds(), connect=_connect_timeout_seconds()),
        # We retry ourselves (see the module docstring); litellm and the OpenAI SDK would each retry too.
        "num_retries": 0,
        "max_retries": 0,
    }
    if config["api_base"]:
        kwargs["api_base"] = config["api_base"]
    if request.temperature is not None:
        kwargs["temperature"] = request.temperature
    if request.max_tokens is not None:
        kwargs["max_tokens"] = request.max_tokens
    if streaming:
        kwargs["stream"] = True
        kwargs["stream_options"] = {"include_usage": True}  # token counts arrive in a last chunk
    return kwargs


def _cost(model: str, input_tokens: int, output_tokens: int, response: Any = None) -> Decimal:
    """litellm's price for the call when it knows the model, else the registry's."""
    lm = _litellm_module
    try:
        assert lm is not None
        if response is not None:
            usd = float(lm.completion_cost(completion_response=response))
        else:
            prompt_usd, completion_usd = lm.cost_per_token(
                model=model, prompt_tokens=input_tokens, completion_tokens=output_tokens
            )
            usd = float(prompt_usd) + float(completion_usd)
        return Decimal(repr(usd)).quantize(registry.COST_QUANTUM)
    except Exception:  # litellm raises for models missing from its price map
        logger.debug("litellm has no price for %s, using the registry's", model, exc_info=True)
        return registry.estimate_cost(model, input_tokens, output_tokens)


def _estimate_input_tokens(messages: list[dict[str, Any]]) -> int:
    return offline.approx_tokens("\n".join(offline.content_text(m.get("content")) for m in messages))


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
        lm = await _litellm_async()
        try:
            async with asyncio.timeout(_timeout_seconds()):
                response = await lm.acompletion(**_completion_kwargs(model, request, streaming=False))
        except Exception as exc:
            raise _map_error(exc, model) from exc
        if not response.choices:
            raise LLMProviderError("The provider returned no choices", model=model)
        choice = response.choices[0]
        text = choice.message.content or ""
        usage = getattr(response, "usage", None)
        input_tokens = int(getattr(usage, "prompt_tokens", 0) or 0) or _estimate_input_tokens(
            request.messages
        )
        output_tokens = int(getattr(usage, "completion_tokens", 0) or 0) or offline.approx_tokens(text)
        return Reply(
            text=text,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=_cost(model, input_tokens, output_tokens, response),
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
        lm = await _litellm_async()
        try:
            async with asyncio.timeout(_timeout_seconds()):
                self._wrapper = await lm.acompletion(
                    **_completion_kwargs(self.model, request, streaming=True)
                )
                self._chunks = self._wrapper.__aiter__()
                while not self._buffered:
                    text = self._take(await self._chunks.__anext__())
                    if text:
                        self._buffered.append(text)
        except StopAsyncIteration:
            self._ended = True  # an empty answer
        except Exception as exc:
            await self.aclose()
            raise _map_error(exc, self.model) from exc
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
                chunk = await asyncio.wait_for(self._chunks.__anext__(), _timeout_seconds())
            except StopAsyncIteration:
                return
            except Exception as exc:
                raise _map_error(exc, self.model) from exc
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
        input_tokens = source.input_tokens or _estimate_input_tokens(self.request.messages)
        output_tokens = source.output_tokens or offline.approx_tokens(text)
        is_offline = registry.provider_of(model) == "offline"
        self._reply = Reply(
            text=text,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=Decimal(0) if is_offline else _cost(model, input_tokens, output_tokens),
            latency_ms=_elapsed_ms(started),
            first_token_ms=first_token_ms,
            finish_reason=source.finish_reason,
            attempts=attempts,
        )


def stream(request: LLMRequest) -> ReplyStream:
    """Stream the answer to ``request``: iterate for text deltas, then read ``.reply`` (see the module doc)."""
    return ReplyStream(request)
