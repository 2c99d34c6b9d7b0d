"""Settings come from the environment; malformed values fail loudly with the variable's name."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import (
    check_database_url,
    check_redis_url,
    env_bool,
    env_float,
    env_int,
    env_int_list,
    env_secret,
    env_str,
)
from tests.support import ROOT, run_python


def test_env_str_default_and_value(monkeypatch):
    monkeypatch.delenv("PARLEY_X", raising=False)
    assert env_str("PARLEY_X", "fallback") == "fallback"
    monkeypatch.setenv("PARLEY_X", "  value ")
    assert env_str("PARLEY_X") == "value"


@pytest.mark.parametrize(
    ("raw", "expected"), [("true", True), ("1", True), ("YES", True), ("false", False), ("0", False)]
)
def test_env_bool_parses(monkeypatch, raw, expected):
    monkeypatch.setenv("PARLEY_FLAG", raw)
    assert env_bool("PARLEY_FLAG") is expected


def test_env_bool_rejects_garbage(monkeypatch):
    monkeypatch.setenv("PARLEY_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="PARLEY_FLAG"):
        env_bool("PARLEY_FLAG")


def test_env_int_parses_and_bounds(monkeypatch):
    monkeypatch.setenv("PARLEY_N", "42")
    assert env_int("PARLEY_N", 1) == 42
    monkeypatch.setenv("PARLEY_N", "forty")
    with pytest.raises(ImproperlyConfigured, match="PARLEY_N must be an integer"):
        env_int("PARLEY_N", 1)
    monkeypatch.setenv("PARLEY_N", "70000")
    with pytest.raises(ImproperlyConfigured, match="PARLEY_N must be between"):
        env_int("PARLEY_N", 1, minimum=0, maximum=65535)


def test_env_float_rejects_negative(monkeypatch):
    monkeypatch.setenv("PARLEY_T", "-1")
    with pytest.raises(ImproperlyConfigured, match="PARLEY_T"):
        env_float("PARLEY_T", 1.0)


def test_env_int_list_reads_discord_ids(monkeypatch):
    monkeypatch.setenv("PARLEY_IDS", "123456789012345678, 42")
    assert env_int_list("PARLEY_IDS") == [123456789012345678, 42]
    monkeypatch.setenv("PARLEY_IDS", "12,abc")
    with pytest.raises(ImproperlyConfigured, match="PARLEY_IDS"):
        env_int_list("PARLEY_IDS")


def test_env_secret_prefers_value_then_file(monkeypatch, tmp_path):
    secret_file = tmp_path / "token.txt"
    secret_file.write_text("from-file\n")
    monkeypatch.delenv("PARLEY_TOKEN", raising=False)
    monkeypatch.setenv("PARLEY_TOKEN_FILE", str(secret_file))
    assert env_secret("PARLEY_TOKEN") == "from-file"
    monkeypatch.setenv("PARLEY_TOKEN", "from-env")
    assert env_secret("PARLEY_TOKEN") == "from-env"


def test_env_secret_placeholder_means_unset(monkeypatch, tmp_path):
    secret_file = tmp_path / "token.txt"
    secret_file.write_text("CHANGE_ME\n")
    monkeypatch.delenv("PARLEY_TOKEN", raising=False)
    monkeypatch.setenv("PARLEY_TOKEN_FILE", str(secret_file))
    assert env_secret("PARLEY_TOKEN") is None


def test_env_secret_missing_file_names_the_variable(monkeypatch, tmp_path):
    monkeypatch.delenv("PARLEY_TOKEN", raising=False)
    monkeypatch.setenv("PARLEY_TOKEN_FILE", str(tmp_path / "nope.txt"))
    with pytest.raises(ImproperlyConfigured, match="PARLEY_TOKEN_FILE"):
        env_secret("PARLEY_TOKEN")


def _load_settings(tmp_path, **env: str):
    base = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    base.update(PARLEY_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="config.settings", **env)
    code = (
        "import django; from django.conf import settings; django.setup();"
        "print(settings.DATABASES['default']['ENGINE'], settings.CACHES['default']['BACKEND'],"
        " settings.SESSION_ENGINE, settings.CHANNEL_LAYERS['default']['BACKEND'], settings.DEBUG)"
    )
    return run_python(code, base)


def test_embedded_default(tmp_path):
    result = _load_settings(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.sqlite3",
        "django.core.cache.backends.locmem.LocMemCache",
        "django.contrib.sessions.backends.db",
        "channels.layers.InMemoryChannelLayer",
        "False",
    ]
    # The development key is generated once and reused.
    key = (tmp_path / "secret_key").read_text()
    assert len(key) >= 50
    _load_settings(tmp_path)
    assert (tmp_path / "secret_key").read_text() == key


def test_services_configuration(tmp_path):
    result = _load_settings(
        tmp_path,
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/parley",
        REDIS_URL="redis://127.0.0.1:6379/0",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:4] == [
        "django.db.backends.postgresql",
        "django_redis.cache.RedisCache",
        "django.contrib.sessions.backends.cache",
        "channels_redis.core.RedisChannelLayer",
    ]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DJANGO_DEBUG", "sometimes"),
        ("BOT_HEALTH_PORT", "eighty"),
        ("TARGET_USER_ID", "me"),
        ("LOG_FORMAT", "xml"),
    ],
)
def test_malformed_value_stops_start_up_with_its_name(tmp_path, name, value):
    result = _load_settings(tmp_path, **{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert name in result.stderr


def test_sqlite_uses_wal(db):
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("SQLite only")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"


def _settings_value(tmp_path, expression: str, **env: str):
    """``expression`` evaluated on the settings of a fresh process (no secret key from the outer environment)."""
    cleared = {"DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY", "DJANGO_SECRET_KEY_FILE", "DJANGO_DEBUG"}
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in cleared and not k.startswith(("DJANGO_SECURE", "SITE"))
    }
    base.update(PARLEY_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="config.settings", **env)
    return run_python(f"import json; from django.conf import settings; print(json.dumps({expression}))", base)


@pytest.mark.parametrize(
    "env",
    [
        {"DJANGO_SECURE": "true"},
        {"SITE_URL": "https://parley.example.com"},
        {"SITE_URL": "http://203.0.113.7:8000", "DJANGO_DEBUG": "false"},
    ],
)
def test_a_deployment_without_a_secret_key_stops_start_up(tmp_path, env):
    result = _settings_value(tmp_path, "settings.SECRET_KEY", **env)
    assert result.returncode != 0
    [line] = [line for line in result.stderr.splitlines() if line.startswith("django.core.exceptions")]
    assert "ImproperlyConfigured: DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) must be set" in line
    assert "secrets.token_urlsafe(50)" in line
    assert not (tmp_path / "secret_key").exists()


def test_a_deployment_reads_its_secret_key_from_a_file(tmp_path):
    key_file = tmp_path / "django_secret_key.txt"
    key_file.write_text("file-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz\n")
    result = _settings_value(
        tmp_path, "settings.SECRET_KEY", DJANGO_SECURE="true", DJANGO_SECRET_KEY_FILE=str(key_file)
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == "file-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"


@pytest.mark.parametrize("env", [{}, {"DJANGO_DEBUG": "true", "SITE_URL": "https://parley.example.com"}])
def test_local_or_debug_runs_generate_the_key(tmp_path, env):
    result = _settings_value(tmp_path, "settings.SECRET_KEY", **env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == (tmp_path / "secret_key").read_text()


def test_a_sqlite_database_url_gets_the_embedded_options(tmp_path):
    embedded = _settings_value(tmp_path, "settings.DATABASES['default']['OPTIONS']")
    from_url = _settings_value(
        tmp_path,
        "settings.DATABASES['default']['OPTIONS']",
        DATABASE_URL=f"sqlite:///{tmp_path}/other.sqlite3",
    )
    assert embedded.returncode == from_url.returncode == 0, embedded.stderr + from_url.stderr
    options = json.loads(from_url.stdout)
    assert options == json.loads(embedded.stdout)
    assert options["transaction_mode"] == "IMMEDIATE" and options["timeout"] == 20
    assert "journal_mode=WAL" in options["init_command"]


def test_a_sqlite_database_url_opens_in_wal_mode(tmp_path):
    code = (
        "import django; django.setup(); from django.db import connection; c = connection.cursor();"
        "c.execute('PRAGMA journal_mode'); print(c.fetchone()[0])"
    )
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(
        PARLEY_VAR_DIR=str(tmp_path),
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=f"sqlite:///{tmp_path}/other.sqlite3",
    )
    result = run_python(code, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "wal"


# --- URLs, and one line for a bad value -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "rediss://:password@redis.example.com:6380",
        "redis://redis",
        "unix:///run/r.sock",
    ],
)
def test_redis_urls_that_work(url):
    check_redis_url("REDIS_URL", url)


@pytest.mark.parametrize(
    "url", ["nonsense", "redis://", "redis://host/zero", "http://host:6379", "redis://host:port/0", "unix://"]
)
def test_redis_urls_that_cannot_work(url):
    with pytest.raises(ImproperlyConfigured, match=r"^REDIS_URL "):
        check_redis_url("REDIS_URL", url)


@pytest.mark.parametrize(
    "url",
    [
        "postgres://parley@db:5432/parley",
        "postgresql://u:p@db.example.com/parley",
        "postgres://%2Frun%2Fpostgresql/parley",
        "postgres:///parley?host=/run/postgresql",
        "sqlite:////tmp/p.sqlite3",
    ],
)
def test_database_urls_that_work(url):
    check_database_url("DATABASE_URL", url)


@pytest.mark.parametrize(
    "url",
    [
        "nonsense",
        "mysql://db/parley",
        "postgres://db",
        "postgres:///parley",
        "postgres://db:x/p",
        "sqlite://",
    ],
)
def test_database_urls_that_cannot_work(url):
    with pytest.raises(ImproperlyConfigured, match=r"^DATABASE_URL "):
        check_database_url("DATABASE_URL", url)


def test_a_bad_url_is_not_repeated_it_may_hold_a_password():
    for check, url in (
        (check_redis_url, "redis://:s3cret-word@/x"),
        (check_database_url, "pg://u:s3cret-word@h/d"),
    ):
        with pytest.raises(ImproperlyConfigured) as error:
            check("URL", url)
        assert "s3cret-word" not in str(error.value)


def start(tmp_path, command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    base.update(PARLEY_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="config.settings", **env)
    return subprocess.run(
        [sys.executable, *command], cwd=ROOT, env=base, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("REDIS_URL", "nonsense"),
        ("DATABASE_URL", "nonsense"),
        ("DATABASE_URL", "postgres://db.example.com:port/parley"),
        ("DJANGO_DEBUG", "sometimes"),
        ("PORT", "eighty"),
        ("LOG_FORMAT", "xml"),
    ],
)
def test_a_bad_value_stops_manage_py_with_one_line_naming_it(tmp_path, name, value):
    result = start(tmp_path, ["manage.py", "check"], **{name: value})
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(f"Parley cannot start: {name} "), line


@pytest.mark.parametrize(
    "command",
    [
        ["manage.py", "runbot"],
        ["manage.py", "migrate"],
        ["-c", "import config.asgi"],
        ["-c", "import config.wsgi"],
        ["-m", "gunicorn", "-c", "config/gunicorn.py", "--bind", "127.0.0.1:0"],
    ],
    ids=["runbot", "migrate", "asgi", "wsgi", "gunicorn"],
)
def test_every_entry_point_says_it_in_one_line(tmp_path, command):
    result = start(tmp_path, command, REDIS_URL="nonsense")
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("Parley cannot start: REDIS_URL must be a Redis URL"), line


def test_an_error_after_the_settings_loaded_keeps_its_traceback():
    """Only the settings' own errors are shortened: later ones are bugs, and their traceback is wanted."""
    from config.env import one_line_errors

    with pytest.raises(ImproperlyConfigured, match="a bug"), one_line_errors():
        raise ImproperlyConfigured("a bug")
