"""The logging configuration: levels from the environment, the request id filter, the secrets safety net."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from config.logging import RedactSecretsFilter, RequestIdFilter, request_id_var
from tests.support import run_python, subprocess_env


def record(message: str, *args: object, **attrs: object) -> logging.LogRecord:
    entry = logging.LogRecord("parley.test", logging.INFO, __file__, 1, message, args or None, None)
    entry.__dict__.update(attrs)
    return entry


def levels(**env: str) -> dict[str, str]:
    code = (
        "import json, logging, django; django.setup(); "
        "print(json.dumps({n: logging.getLevelName(logging.getLogger(n).getEffectiveLevel()) "
        "for n in ('root', 'discord', 'discord.gateway', 'LiteLLM', 'httpcore', 'django.db.backends', 'botcore')}))"
    )
    result = run_python(code, subprocess_env(**env))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("env", "discord"),
    [
        ({"LOG_LEVEL": "INFO"}, "WARNING"),
        ({"LOG_LEVEL": "DEBUG"}, "INFO"),  # gateway payloads and REST bodies stay out
        ({"LOG_LEVEL": "ERROR"}, "ERROR"),
        ({"LOG_LEVEL": "DEBUG", "DISCORD_LOG_LEVEL": "DEBUG"}, "DEBUG"),  # an explicit choice
    ],
)
def test_discord_stays_at_info_or_above_unless_asked(env, discord):
    found = levels(**env)
    assert found["discord"] == found["discord.gateway"] == discord
    assert found["root"] == found["botcore"] == env["LOG_LEVEL"]
    quiet = "ERROR" if env["LOG_LEVEL"] == "ERROR" else "WARNING"
    assert found["LiteLLM"] == found["httpcore"] == quiet
    assert found["django.db.backends"] == ("ERROR" if env["LOG_LEVEL"] == "ERROR" else "INFO")


def test_a_bad_discord_log_level_names_the_variable():
    result = run_python("import django; django.setup()", {**subprocess_env(), "DISCORD_LOG_LEVEL": "LOUD"})
    assert result.returncode != 0
    assert "DISCORD_LOG_LEVEL must be a logging level name, got 'LOUD'" in result.stderr


def test_request_id_comes_from_the_context_or_from_the_logged_request():
    token = request_id_var.set("ctx-id")
    try:
        entry = record("inside")
        RequestIdFilter().filter(entry)
        assert entry.request_id == "ctx-id"
    finally:
        request_id_var.reset(token)
    request = type("Request", (), {"request_id": "req-id"})()
    entry = record("Not Found: %s", "/x", request=request)  # django.request, after the middleware returned
    RequestIdFilter().filter(entry)
    assert entry.request_id == "req-id"
    entry = record("no request at all")
    RequestIdFilter().filter(entry)
    assert entry.request_id == "-"


def test_configured_secrets_are_redacted_from_messages_and_tracebacks(settings):
    settings.DISCORD_BOT_TOKEN = "bot-token-value-123"
    settings.LLM_PROVIDERS = {"openai": {"api_key": "sk-key-value-456", "api_base": None}}
    settings.REDIS_URL = "redis://:redis-password-789@redis:6379/0"
    settings.DISCORD_CLIENT_SECRET = "short"  # too short to search for without garbling the logs
    entry = record("calling with %s and %s", "bot-token-value-123", "sk-key-value-456")
    try:
        raise RuntimeError("auth failed for redis-password-789")
    except RuntimeError:
        entry.exc_info = sys.exc_info()
    RedactSecretsFilter().filter(entry)
    assert entry.getMessage() == "calling with [redacted] and [redacted]"
    assert entry.exc_info is None
    assert "auth failed for [redacted]" in entry.exc_text
    untouched = record("nothing secret, just short")
    RedactSecretsFilter().filter(untouched)
    assert untouched.getMessage() == "nothing secret, just short"


def test_the_encryption_keys_are_redacted_too(settings):
    settings.PARLEY_ENCRYPTION_KEYS = ["bmV3LWtleS0zMi1ieXRlcy1sb25nLWZvci1mZXJuZXQ=", "b2xkLWtleQ=="]
    entry = record("rotating %s to %s", "b2xkLWtleQ==", "bmV3LWtleS0zMi1ieXRlcy1sb25nLWZvci1mZXJuZXQ=")
    RedactSecretsFilter().filter(entry)
    assert entry.getMessage() == "rotating [redacted] to [redacted]"


def text_formatter() -> logging.Formatter:
    from config.logging import logging_config

    options = dict(
        logging_config(log_format="text", level="INFO", discord_level="WARNING")["formatters"]["text"]
    )
    factory = options.pop("()")
    assert factory == "config.logging.TextFormatter"
    from config.logging import TextFormatter

    return TextFormatter(options["format"])


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("/foo\nFAKE", "/foo\\nFAKE"),
        ("a\r\nb\tc", "a\\r\\nb\\tc"),
        ("\x1b[31mred\x00", "\\u001b[31mred\\u0000"),
        ("nel\x85 ls\u2028 ps\u2029 del\x7f", "nel\\u0085 ls\\u2028 ps\\u2029 del\\u007f"),
        ("plain café ✓", "plain café ✓"),
    ],
)
def test_text_lines_escape_control_characters_in_the_message_and_its_arguments(text, escaped):
    entry = record("GET %s 404", text, request_id="-")
    assert text_formatter().format(entry).endswith(f"[-] GET {escaped} 404")
    entry = record(f"literal {text}", request_id="-")
    assert text_formatter().format(entry).endswith(f"[-] literal {escaped}")


def test_a_traceback_keeps_its_lines_after_the_escaped_message():
    try:
        raise ValueError("boom")
    except ValueError:
        entry = record("failed on %s", "x\ny", request_id="-", exc_info=sys.exc_info())
    first, *rest = text_formatter().format(entry).splitlines()
    assert first.endswith("failed on x\\ny")
    assert rest[0] == "Traceback (most recent call last):" and rest[-1] == "ValueError: boom"


@pytest.mark.django_db
def test_a_newline_in_the_path_cannot_forge_a_log_line():
    code = (
        "import django; django.setup(); from django.test import Client;"
        "print(Client().get('/foo%0aFAKE 200 1ms%0d%e2%80%a8x', headers={'host': '127.0.0.1'}).status_code)"
    )
    result = run_python(code, subprocess_env(LOG_FORMAT="text", LOG_LEVEL="INFO"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "404"
    lines = result.stderr.splitlines()
    access = [line for line in lines if " parley.access " in line]
    assert len(access) == 1 and access[0].endswith(
        "GET /foo\\nFAKE 200 1ms\\r\\u2028x 404 " + access[0].split()[-1]
    )
    not_found = [line for line in lines if " django.request " in line]
    assert not_found and all("\\nFAKE" in line for line in not_found)
    assert not any(line.startswith("FAKE") or line.startswith("x ") for line in lines)


def test_discord_py_does_not_warn_about_voice_at_every_start(caplog, monkeypatch):
    """Parley has no voice features: the warnings that PyNaCl and davey are missing are left out, others stay."""
    import discord

    monkeypatch.setattr(discord.VoiceClient, "warn_nacl", True)
    monkeypatch.setattr(discord.VoiceClient, "warn_dave", True)
    with caplog.at_level(logging.WARNING):
        discord.Client(intents=discord.Intents.default())
        logging.getLogger("discord.client").warning("something else")
    assert [r.getMessage() for r in caplog.records if r.name == "discord.client"] == ["something else"]
