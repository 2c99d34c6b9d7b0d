"""litellm, behind one door: its lazy import, the arguments of a call, one attempt (whole or streamed), its errors
mapped to ours, and prices.

litellm costs about 7 s of CPU to import, so nothing imports it at module level: :func:`litellm` imports and
configures it on first use (call :func:`warm_import` in a thread at bot start-up; :func:`litellm_async` imports it
in a worker thread so the event loop keeps running). Only a process that called :func:`run_inline` (the bot, and
the child of :mod:`llm.runner`) makes its attempts here; any other (the web process) hands them to
:mod:`llm.runner`, so that the import and litellm's parsing never hold a web worker's interpreter.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from importlib.metadata import version
from types import ModuleType
from typing import Any

from django.conf import settings

from config import encryption
from config.logging import REDACTED, redact_from_now_on
from llm import offline, registry
from llm.errors import (
    LLMBadRequest,
    LLMError,
    LLMProviderError,
    LLMRateLimited,
    LLMTimeout,
    LLMUnavailable,
)
from llm.keys import INSTANCE_KEYS, Keys
from llm.request import LLMRequest

logger = logging.getLogger(__name__)

_ERROR_MESSAGE_LIMIT = 300


# --- settings, read at call time -----------------------------------------------------------------------------
def timeout_seconds() -> float:
    return float(getattr(settings, "LLM_TIMEOUT_SECONDS", 60.0))


def _connecttimeout_seconds() -> float:
    return min(float(getattr(settings, "LLM_CONNECT_TIMEOUT_SECONDS", 10.0)), timeout_seconds())


def max_retries() -> int:
    return int(getattr(settings, "LLM_MAX_RETRIES", 2))


def backoff_seconds() -> float:
    return float(getattr(settings, "LLM_RETRY_BACKOFF_SECONDS", 0.5))


# --- where attempts run --------------------------------------------------------------------------------------
_inline = False


def run_inline() -> None:
    """Make this process's provider attempts itself (the bot: answering is its job) instead of in a child."""
    global _inline
    _inline = True


def inline() -> bool:
    return _inline


# --- litellm, imported once and lazily -----------------------------------------------------------------------
_litellm_module: ModuleType | None = None
_import_lock = threading.Lock()


def litellm() -> ModuleType:
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
    lm: Any = importlib.import_module("litellm")
    lm.suppress_debug_info = True  # no "Give Feedback / Get Help" banners on every exception
    lm.drop_params = True  # one request shape for every provider; unsupported params are dropped
    lm.turn_off_message_logging = True  # message text stays out of litellm's logging objects
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
        setattr(lm, name, [])
    logger.info("litellm %s imported in %.1f s of CPU", version("litellm"), time.process_time() - started)
    return lm


async def litellm_async() -> ModuleType:
    if _litellm_module is not None:
        return _litellm_module
    # The import would block the event loop for seconds (and Discord's heartbeat with it).
    return await asyncio.to_thread(litellm)


def warm_import() -> bool:
    """Import litellm now if any provider has an API key, or servers may bring their own (run in a thread at bot
    start-up). True if imported."""
    instance_keys = any(registry.provider_available(p.id) for p in registry.key_providers())
    if not instance_keys and not encryption.configured():
        return False
    litellm()
    return True


# --- errors ----------------------------------------------------------------------------------------------------
def unusable(model: str, keys: Keys = INSTANCE_KEYS) -> LLMError | None:
    """The error that makes calling ``model`` with ``keys`` pointless, if any."""
    provider = registry.provider_of(model)
    if provider is None:
        return LLMBadRequest(f"Unknown model {model!r}", model=model)
    label = registry.provider_label(provider)
    own = keys.own.get(provider)
    if own is not None and not own.api_key:
        return LLMUnavailable(
            f"This server's own {label} key cannot be decrypted: check PARLEY_ENCRYPTION_KEY (parley_doctor)",
            model=model,
            notice=f"This server's {label} API key cannot be read right now: Parley's operator has to fix its "
            "encryption key.",
        )
    if own is None and provider != "offline" and not keys.instance:
        return LLMUnavailable(
            f"This server has no {label} key of its own, and LLM_REQUIRE_SERVER_KEYS is on",
            model=model,
            notice=f"This server needs its own {label} API key for this model: a server owner can add one in "
            "the Parley dashboard (Keys).",
        )
    if own is not None:
        return None
    reason = registry.unavailable_reason(provider)
    return LLMUnavailable(reason, model=model) if reason is not None else None


def _short(exc: BaseException, secret: str | None = None) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if secret:  # a provider may quote the key it refused
        text = text.replace(secret, REDACTED)
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


def map_error(exc: BaseException, model: str, timeout: float, secret: str | None = None) -> LLMError:
    """Our typed error for whatever litellm (or our own ``timeout``, in seconds) raised; ``secret``, the call's
    API key, never part of its message."""
    if isinstance(exc, LLMError):
        return exc
    if isinstance(exc, TimeoutError):
        return LLMTimeout(f"No answer within {timeout:g} s", model=model)
    lm = _litellm_module
    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    message = _short(exc, secret)

    def caught(*names: str) -> bool:
        return lm is not None and isinstance(exc, tuple(getattr(lm, n) for n in names))

    # Order matters: litellm's Timeout is an APIConnectionError, and its context-window, content-policy and
    # payment errors are BadRequestErrors.
    if caught("Timeout") or status == 408:
        return LLMTimeout(f"No answer within {timeout:g} s", model=model, status_code=status)
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


def completion_kwargs(model: str, request: LLMRequest, *, streaming: bool) -> dict[str, Any]:
    """litellm's arguments for one attempt, from this process's settings. Plain JSON values (the timeouts as
    seconds), so that :mod:`llm.runner` can hand them to its child process as they are."""
    provider = registry.provider_of(model)
    assert provider is not None
    config = registry.provider_config(provider)
    kwargs: dict[str, Any] = {
        "model": model,
        "messages": request.messages,
        # The server's own key, or the instance's (llm/keys.py); the instance's api_base either way.
        "api_key": request.keys.api_key(provider),
        # litellm's own default is 6,000 s; the "connect" part keeps a dead host from eating the whole budget.
        "timeout": timeout_seconds(),
        "connect_timeout": _connecttimeout_seconds(),
        # We retry ourselves (see llm.client); litellm and the OpenAI SDK would each retry too.
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


async def _acompletion(lm: ModuleType, kwargs: dict[str, Any]) -> Any:
    """The call itself (``lm``: litellm, imported before the attempt's clock starts)."""
    import httpx  # a litellm dependency; only needed once litellm is

    redact_from_now_on(
        kwargs.get("api_key")
    )  # a server's key, in this process's logs (the runner's child too)
    call = dict(kwargs)
    call["timeout"] = httpx.Timeout(call["timeout"], connect=call.pop("connect_timeout"))
    return await lm.acompletion(**call)


@dataclass
class Completion:
    """What one attempt at a provider model gave; ``None`` where the provider did not say."""

    text: str
    input_tokens: int | None
    output_tokens: int | None
    finish_reason: str | None
    cost_usd: Decimal | None
    reasoning: str = ""  # the provider's reasoning field (llm.reasoning), never part of ``text``
    reasoning_tokens: int | None = None  # included in output_tokens, as providers count them


def _reasoning_tokens(usage: Any) -> int | None:
    details = getattr(usage, "completion_tokens_details", None)
    value = getattr(details, "reasoning_tokens", None)
    return int(value) if isinstance(value, int) else None


async def complete(model: str, kwargs: dict[str, Any]) -> Completion:
    """One attempt, the whole answer (``kwargs`` from :func:`completion_kwargs`); raises an :class:`LLMError`."""
    timeout = kwargs["timeout"]
    lm = await litellm_async()  # outside the timeout: the attempt's time is the provider's, not the import's
    try:
        async with asyncio.timeout(timeout):
            response = await _acompletion(lm, kwargs)
    except Exception as exc:
        raise map_error(exc, model, timeout, kwargs.get("api_key")) from exc
    if not response.choices:
        raise LLMProviderError("The provider returned no choices", model=model)
    choice = response.choices[0]
    usage = getattr(response, "usage", None)
    input_tokens = int(getattr(usage, "prompt_tokens", 0) or 0) or None
    output_tokens = int(getattr(usage, "completion_tokens", 0) or 0) or None
    text = choice.message.content or ""
    priced = cost(model, input_tokens or 0, output_tokens or 0, response) if input_tokens else None
    reasoning = getattr(choice.message, "reasoning_content", None) or ""
    return Completion(
        text, input_tokens, output_tokens, choice.finish_reason, priced, reasoning, _reasoning_tokens(usage)
    )


class LiteLLMStream:
    """One streamed attempt: opened and read up to its first text, so that failures before it can be retried."""

    def __init__(self, model: str, kwargs: dict[str, Any]) -> None:
        self.model = model
        self.kwargs = kwargs
        self.timeout: float = kwargs["timeout"]
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.finish_reason: str | None = None
        self.reasoning = ""
        self.reasoning_tokens: int | None = None
        self._wrapper: Any = None
        self._chunks: AsyncIterator[Any] | None = None
        self._buffered: list[str] = []
        self._ended = False

    @property
    def cost_usd(self) -> Decimal | None:
        if self.input_tokens is None or self.output_tokens is None:
            return None
        return cost(self.model, self.input_tokens, self.output_tokens)

    async def open(self) -> LiteLLMStream:
        lm = (
            await litellm_async()
        )  # outside the timeout: the attempt's time is the provider's, not the import's
        try:
            async with asyncio.timeout(self.timeout):
                self._wrapper = await _acompletion(lm, self.kwargs)
                self._chunks = self._wrapper.__aiter__()
                # Up to the first text, or the first thinking: a reasoning model may think for longer than the
                # timeout, and its thinking shows it is alive (each gap after this has the timeout of its own).
                while not self._buffered and not self.reasoning:
                    text = self._take(await self._chunks.__anext__())
                    if text:
                        self._buffered.append(text)
        except StopAsyncIteration:
            self._ended = True  # an empty answer
        except Exception as exc:
            await self.aclose()
            raise map_error(exc, self.model, self.timeout, self.kwargs.get("api_key")) from exc
        return self

    def _take(self, chunk: Any) -> str:
        """Record the chunk's usage and finish reason; return its text."""
        usage = getattr(chunk, "usage", None)
        if usage is not None and getattr(usage, "prompt_tokens", None) is not None:
            self.input_tokens = int(usage.prompt_tokens)
            self.output_tokens = int(usage.completion_tokens or 0)
            self.reasoning_tokens = _reasoning_tokens(usage)
        if not chunk.choices:
            return ""
        choice = chunk.choices[0]
        if choice.finish_reason:
            self.finish_reason = choice.finish_reason
        self.reasoning += getattr(choice.delta, "reasoning_content", None) or ""
        return getattr(choice.delta, "content", None) or ""

    async def deltas(self) -> AsyncGenerator[str, None]:
        """The answer's text as it arrives ("" when only ``reasoning`` grew)."""
        buffered, self._buffered = self._buffered, []
        for text in buffered:
            yield text
        if self._ended or self._chunks is None:
            return
        while True:
            try:
                chunk = await asyncio.wait_for(self._chunks.__anext__(), self.timeout)
            except StopAsyncIteration:
                return
            except Exception as exc:
                raise map_error(exc, self.model, self.timeout, self.kwargs.get("api_key")) from exc
            thought = len(self.reasoning)
            text = self._take(chunk)
            if text or len(self.reasoning) != thought:
                yield text  # "" for a piece of thinking: the caller reads ``reasoning``

    async def aclose(self) -> None:
        wrapper, self._wrapper = self._wrapper, None
        if wrapper is not None and hasattr(wrapper, "aclose"):
            try:
                await wrapper.aclose()
            except Exception:  # closing is best effort: the answer (or the error) is what matters
                logger.debug("closing the litellm stream failed", exc_info=True)


def cost(model: str, input_tokens: int, output_tokens: int, response: Any = None) -> Decimal:
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


def estimate_input_tokens(messages: list[dict[str, Any]]) -> int:
    return offline.approx_tokens("\n".join(offline.content_text(m.get("content")) for m in messages))
