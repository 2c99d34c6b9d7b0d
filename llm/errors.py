"""Typed failures of an LLM call, independent of litellm so callers (cogs, services) can catch them cheaply.

``kind`` matches ``llm.models.Usage.Outcome`` values, so a caller records ``outcome=exc.kind``.
"""

from __future__ import annotations


class LLMError(Exception):
    kind = "provider_error"
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        status_code: int | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        notice: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.notice = (
            notice  # what the asker is told, when it is more than the kind's notice (a server's own key)
        )
        self.model = model  # the model whose failure this is (the fallback's, when one was tried)
        self.status_code = status_code
        if retryable is not None:
            self.retryable = retryable
        self.retry_after = retry_after  # seconds the provider asked us to wait, when it said
        # Filled in by llm.client once the whole call (retries and fallback included) has given up:
        self.latency_ms: int | None = None
        self.attempts = 0

    def __str__(self) -> str:
        return f"{self.message} (model {self.model})" if self.model else self.message


class LLMTimeout(LLMError):
    kind = "timeout"
    retryable = True


class LLMRateLimited(LLMError):
    kind = "rate_limited"
    retryable = True


class LLMProviderError(LLMError):
    """5xx and connection failures (retryable), or a provider refusing our key or model (not retryable)."""

    kind = "provider_error"


class LLMUnavailable(LLMError):
    """The model's provider has no API key configured."""

    kind = "unavailable"


class LLMBadRequest(LLMError):
    """The request itself is wrong (unknown model, context too long, content policy): retrying cannot help."""

    kind = "bad_request"


_NOTICES = {
    "timeout": "Sorry, the model took too long to answer. Please try again.",
    "rate_limited": "The model provider is busy right now. Please try again in a moment.",
    "unavailable": "This server's model is not configured. An admin can pick another one in the dashboard.",
    "bad_request": "Sorry, the model could not answer that message.",
}
GENERIC_NOTICE = "Sorry, something went wrong while answering. Please try again."


def user_notice(error: LLMError) -> str:
    """What to tell the person who asked (no provider details: those are for the logs and the dashboard)."""
    return error.notice or _NOTICES.get(error.kind, GENERIC_NOTICE)
