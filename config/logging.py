"""Logging for the web and bot processes: one console handler, text or JSON, a request id on every line, and the
configured secrets never written out.

``logging_config()`` builds the ``LOGGING`` dict for ``config/settings.py``; gunicorn's master process uses the
same dict (``config/gunicorn.py``), so its own lines look like the application's. This module imports nothing
from Django at import time: gunicorn loads it before Django is set up.
"""

from __future__ import annotations

import logging
import re
import threading
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

from pythonjsonlogger.core import RESERVED_ATTRS

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

# Third-party loggers that print request bodies, headers or gateway payloads (user messages, sometimes keys) at
# DEBUG. They stay at WARNING whatever LOG_LEVEL says; discord.py has its own DISCORD_LOG_LEVEL.
QUIET_LOGGERS = (
    "LiteLLM",
    "LiteLLM Router",
    "LiteLLM Proxy",
    "httpx",
    "httpcore",
    "openai",
    "anthropic",
    "urllib3",
    "asyncio",
    "websockets",
    "hpack",
    "aiohttp",
    "psycopg",
    "redis",
)
# Secrets shorter than this are not searched for: redacting "1" or "abc" everywhere would garble the logs.
_MIN_SECRET_LENGTH = 8
REDACTED = "[redacted]"


class RequestIdFilter(logging.Filter):
    """Adds ``request_id``: the one set by ``RequestIdMiddleware`` for this request, else ``-``.

    Django logs 4xx/5xx responses (``django.request``) after the middleware has returned, outside the request's
    context; those records carry the request itself, which the middleware tagged with its id.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = request_id_var.get()
        if request_id == "-":
            request_id = getattr(getattr(record, "request", None), "request_id", None) or "-"
        record.request_id = request_id
        return True


# C0 and C1 control characters (newlines, tabs, terminal escapes) and Unicode's line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_control_characters(text: str) -> str:
    """``\\n``, ``\\u001b``, ``\\u2028``... in place of the characters: text from a request (a path with ``%0a``) cannot
    start a line of its own in the log."""
    return _CONTROL.sub(lambda m: _ESCAPES.get(m[0]) or f"\\u{ord(m[0]):04x}", text)


class TextFormatter(logging.Formatter):
    """The text format, one record a line: control characters in the message and its arguments are escaped.
    A traceback, appended after the line, keeps its own line breaks. (JSON lines escape them by construction.)"""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_control_characters(super().formatMessage(record))


def configured_secrets() -> list[str]:
    """The secret values in the running configuration: tokens, keys, passwords (read at call time)."""
    from django.conf import settings

    if not settings.configured:
        return []
    values: list[str | None] = [
        getattr(settings, "DISCORD_BOT_TOKEN", None),
        getattr(settings, "DISCORD_CLIENT_SECRET", None),
        getattr(settings, "SECRET_KEY", None),
        getattr(settings, "DATABASE_PASSWORD", None),
        getattr(settings, "EMAIL_HOST_PASSWORD", None),
    ]
    values += [entry.get("api_key") for entry in (getattr(settings, "LLM_PROVIDERS", None) or {}).values()]
    values += list(getattr(settings, "PARLEY_ENCRYPTION_KEYS", None) or [])
    for url_setting in ("DATABASE_URL", "REDIS_URL"):
        url = getattr(settings, url_setting, None)
        if url:
            values.append(urlsplit(url).password)
    return sorted({v for v in values if v and len(v) >= _MIN_SECRET_LENGTH}, key=len, reverse=True)


# Secrets this process learnt while running, not from its settings: the servers' own provider keys, once
# decrypted (config/encryption.py) or handed to a model call (llm/providers.py).
_learnt: set[str] = set()
_learnt_lock = threading.Lock()


def redact_from_now_on(secret: str | None) -> None:
    """Keep ``secret`` out of every log line this process writes from now on."""
    if secret and len(secret) >= _MIN_SECRET_LENGTH and secret not in _learnt:
        with _learnt_lock:
            _learnt.add(secret)


class RedactSecretsFilter(logging.Filter):
    """Replaces any configured or learnt secret that reaches a log line with ``[redacted]``.

    A safety net, not the policy: code must not log secrets in the first place (tests/test_log_secrets.py checks
    a whole bot run). It covers the message and the traceback, where an exception may quote a URL or header.
    """

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        self._configured: list[str] | None = None
        self._secrets: list[str] = []
        self._learnt_seen = -1

    def _load(self) -> list[str]:
        if self._configured is None:
            try:
                self._configured = configured_secrets()
            except Exception:  # settings that cannot load must not stop logging
                return []
            self._learnt_seen = -1
        if self._learnt_seen != len(_learnt):  # the set only grows: its size says whether it changed
            with _learnt_lock:
                learnt = set(_learnt)
            self._secrets = sorted({*self._configured, *learnt}, key=len, reverse=True)
            self._learnt_seen = len(learnt)
        return self._secrets

    def _redact(self, text: str) -> str:
        for secret in self._load():
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._load():
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is logging's own error to report
            return True
        redacted = self._redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_info[0] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            redacted = self._redact(text)
            if redacted != text:
                record.exc_info, record.exc_text = None, redacted
        return True


class NoVoiceWarningsFilter(logging.Filter):
    """Drops discord.py's warnings that voice is unsupported (PyNaCl and davey are not installed): Parley has no
    voice features, so the two lines at every bot start would only send newcomers looking for a missing library."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).endswith("voice will NOT be supported")


def logging_config(*, log_format: str, level: str, discord_level: str) -> dict[str, Any]:
    """The ``LOGGING`` dict: everything goes through one console handler on the root logger."""

    def at_least(floor: str) -> str:
        # A child logger's level is the only one checked before its records reach the root's handler.
        return max(floor, level, key=logging.getLevelName)

    quiet = {name: {"level": at_least("WARNING")} for name in QUIET_LOGGERS}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": "config.logging.RequestIdFilter"},
            "redact": {"()": "config.logging.RedactSecretsFilter"},
            "no_voice_warnings": {"()": "config.logging.NoVoiceWarningsFilter"},
        },
        "formatters": {
            "text": {
                "()": "config.logging.TextFormatter",
                "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
            },
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s",
                # Extras left out of the JSON: django.request's request repr carries the query string (OAuth
                # codes), uvicorn's color_message repeats the message with terminal escapes.
                "reserved_attrs": [*RESERVED_ATTRS, "request", "color_message"],
            },
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": log_format,
                "filters": ["request_id", "redact"],
            },
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            **quiet,
            "discord": {"level": discord_level},
            "discord.client": {"filters": ["no_voice_warnings"]},
            # SQL with its parameters (session keys, OAuth tokens) when DEBUG is on: never at LOG_LEVEL=DEBUG.
            "django.db.backends": {"level": at_least("INFO")},
            # The servers' own lines go through our handler (gunicorn's master and its uvicorn workers), so
            # they are JSON too. Their access logs are off: RequestIdMiddleware writes one line per request
            # (parley.access) with the request id, and without the query string, where OAuth codes travel.
            "gunicorn.error": {"propagate": True},
            "gunicorn.access": {"level": at_least("WARNING"), "propagate": False},
            "uvicorn.error": {"propagate": True},
            "uvicorn.access": {"level": at_least("WARNING"), "propagate": False},
        },
    }
