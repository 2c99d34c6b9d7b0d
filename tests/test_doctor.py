"""``manage.py parley_doctor`` in a subprocess, with the environments an operator might give it. Its findings are
Django system checks tagged ``parley`` (config/checks.py), registered by the apps they concern."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from botcore.models import ShardStatus
from guilds.models import Guild
from tests.support import ROOT, subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)

# Variables the doctor reads; each test starts without any of them from the outer environment.
_CLEARED = (
    "DJANGO_DEBUG",
    "DJANGO_SECRET_KEY",
    "DJANGO_SECRET_KEY_FILE",
    "DJANGO_ALLOWED_HOSTS",
    "DJANGO_SECURE",
    "DJANGO_BEHIND_PROXY",
    "CSRF_TRUSTED_ORIGINS",
    "SITE_URL",
    "REDIS_URL",
    "DISCORD_BOT_TOKEN",
    "DISCORD_BOT_TOKEN_FILE",
    "DISCORD_CLIENT_ID",
    "DISCORD_CLIENT_SECRET",
    "DISCORD_CLIENT_SECRET_FILE",
    "DISCORD_API_BASE",
    "LLM_DEFAULT_MODEL",
    "LLM_REQUIRE_SERVER_KEYS",
    "PARLEY_ENCRYPTION_KEY",
    "PARLEY_ENCRYPTION_KEY_FILE",
    *(f"{p}_API_KEY{f}" for p in ("OPENAI", "ANTHROPIC", "GEMINI", "XAI") for f in ("", "_FILE")),
)
BOT_TOKEN = "MTAxMjM0NTY3ODkw.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789"
DEV = {
    "DISCORD_BOT_TOKEN": BOT_TOKEN,
    "DISCORD_CLIENT_ID": "1012345678901234567",
    "DISCORD_CLIENT_SECRET": "client-secret-value-1234",
}
PRODUCTION = {
    **DEV,
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "prod-secret-key-for-the-doctor-0123456789-abcdefghijklmnopq",
    "SITE_URL": "https://parley.example.com",
    "DJANGO_ALLOWED_HOSTS": "parley.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://parley.example.com",
    "DJANGO_SECURE": "true",
    "DJANGO_BEHIND_PROXY": "true",
    "OPENAI_API_KEY": "sk-doctor-test-key",
    "LLM_DEFAULT_MODEL": "openai/gpt-4o-mini",
}


def doctor(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return manage(tmp_path, "parley_doctor", "--no-color", *args, **env)


def manage(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = subprocess_env(PARLEY_VAR_DIR=str(tmp_path))
    for name in _CLEARED:
        environment.pop(name, None)
    environment.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def lines(result: subprocess.CompletedProcess[str], level: str) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith(level)]


def test_a_good_development_setup_passes(tmp_path):
    result = doctor(tmp_path, **DEV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines(result, "ERROR") == []
    assert "redirect URL: http://127.0.0.1:8000/accounts/discord/login/callback/" in result.stdout
    assert "0 error(s)" in result.stdout
    assert BOT_TOKEN not in result.stdout and "client-secret-value-1234" not in result.stdout


def test_a_good_production_setup_passes(tmp_path):
    result = doctor(tmp_path, **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines(result, "ERROR") == []
    assert "redirect URL: https://parley.example.com/accounts/discord/login/callback/" in result.stdout
    assert "ok      LLM: providers: OpenAI; default model openai/gpt-4o-mini" in result.stdout
    assert "ok      Production: DEBUG off, secret key set, HTTPS on" in result.stdout
    # No Redis in production works, but not as meant: a warning does not fail the run.
    assert [line.split(":")[0] for line in lines(result, "WARNING")] == ["WARNING Redis"]


def test_missing_token_and_login_are_errors_with_fixes(tmp_path):
    result = doctor(tmp_path)
    assert result.returncode == 1
    errors = lines(result, "ERROR")
    assert any("DISCORD_BOT_TOKEN is not set" in line for line in errors)
    assert any("DISCORD_CLIENT_ID and DISCORD_CLIENT_SECRET not set" in line for line in errors)
    assert "-> Developer Portal > your application > Bot > Reset Token" in result.stdout
    assert "2 error(s)" in result.stderr
    assert "[parley.E001]" in result.stdout and "[parley.E011]" in result.stdout


def test_the_findings_are_system_checks_that_run_only_when_asked(tmp_path):
    asked = manage(tmp_path, "check", "--deploy", "--database", "default", "--tag", "parley")
    assert asked.returncode == 1
    assert "Bot token: (parley.E001) DISCORD_BOT_TOKEN is not set" in asked.stderr
    # Every other command's check leaves them out: no Discord credentials needed to migrate, nothing contacted.
    plain = manage(tmp_path, "check", REDIS_URL="redis://127.0.0.1:1/0")
    assert plain.returncode == 0, plain.stderr
    assert "parley." not in plain.stdout + plain.stderr


def test_site_url_must_match_allowed_hosts_and_csrf_origins(tmp_path):
    result = doctor(
        tmp_path, **{**PRODUCTION, "DJANGO_ALLOWED_HOSTS": "other.example.com", "CSRF_TRUSTED_ORIGINS": ""}
    )
    assert result.returncode == 1
    assert any(
        "parley.example.com (from SITE_URL) is not in DJANGO_ALLOWED_HOSTS" in x
        for x in lines(result, "ERROR")
    )
    assert any(
        "https://parley.example.com is not in CSRF_TRUSTED_ORIGINS" in x for x in lines(result, "WARNING")
    )
    assert "-> Add parley.example.com to DJANGO_ALLOWED_HOSTS." in result.stdout


def test_public_http_site_url_with_https_switched_on_is_an_error(tmp_path):
    result = doctor(tmp_path, **{**PRODUCTION, "SITE_URL": "http://parley.example.com"})
    assert result.returncode == 1
    assert any("SITE_URL is http:// on a public host" in line for line in lines(result, "ERROR"))


def test_production_needs_debug_off_and_a_real_secret_key(tmp_path):
    env = {**PRODUCTION, "DJANGO_DEBUG": "true"}
    del env["DJANGO_SECRET_KEY"]
    result = doctor(tmp_path, **env)
    assert result.returncode == 1
    errors = "\n".join(lines(result, "ERROR"))
    assert "DJANGO_DEBUG is on" in errors
    assert "DJANGO_SECRET_KEY is not set" in errors


def test_unreachable_database_is_an_error(tmp_path):
    result = doctor(tmp_path, **DEV, DATABASE_URL="postgres://parley@127.0.0.1:1/parley")
    assert result.returncode == 1
    [error] = lines(result, "ERROR")
    # The pool would not give a connection within the probe's timeout (the driver's reason is logged).
    assert error.startswith("ERROR   Database: postgresql is not reachable: PoolTimeout")
    assert "Shards: skipped: the database is not reachable" in result.stdout


def test_unreachable_redis_is_an_error(tmp_path):
    result = doctor(tmp_path, **DEV, REDIS_URL="redis://127.0.0.1:1/0")
    assert result.returncode == 1
    [error] = lines(result, "ERROR")
    assert error.startswith("ERROR   Redis: not reachable: ConnectionError")


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="no Redis to reach (make test-services)")
def test_reachable_redis_is_ok(tmp_path):
    result = doctor(tmp_path, **DEV, REDIS_URL=os.environ["REDIS_URL"])
    assert result.returncode == 0, result.stdout
    assert "ok      Redis: reachable" in result.stdout


def test_default_model_needs_its_provider_key(tmp_path):
    result = doctor(tmp_path, **DEV, LLM_DEFAULT_MODEL="anthropic/claude-haiku-4-5")
    assert result.returncode == 1
    assert "LLM_DEFAULT_MODEL=anthropic/claude-haiku-4-5 but its provider has no key" in result.stdout
    assert "-> Set ANTHROPIC_API_KEY to enable Anthropic models" in result.stdout
    unknown = doctor(tmp_path, **DEV, LLM_DEFAULT_MODEL="mistral/large")
    assert "LLM_DEFAULT_MODEL='mistral/large' names no known provider" in unknown.stdout


def test_server_keys_need_an_encryption_key_and_it_says_how_to_make_one(tmp_path):
    result = doctor(tmp_path, **DEV)
    assert (
        "info    Server keys: PARLEY_ENCRYPTION_KEY is not set: server owners cannot store" in result.stdout
    )
    command = 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
    assert command in result.stdout
    required = doctor(tmp_path, **DEV, LLM_REQUIRE_SERVER_KEYS="true")
    assert required.returncode == 1 and "[parley.E066]" in required.stdout
    configured = doctor(tmp_path, **DEV, PARLEY_ENCRYPTION_KEY="not-a-key")
    assert configured.returncode != 0
    assert "PARLEY_ENCRYPTION_KEY: key 1 is not a Fernet key" in configured.stderr


@pytest.fixture
def many_guilds():
    Guild.objects.bulk_create(
        Guild(discord_id=10**17 + n, name=f"Guild {n}", shard_id=n % 4) for n in range(2600)
    )


@pytest.mark.parametrize(
    ("shards", "code", "expected"),
    [
        (
            "1",
            1,
            "ERROR   Shards: 2600 guild(s) on 1 shard(s): about 2600 per shard; Discord refuses more than 2500",
        ),
        (
            "2",
            0,
            "WARNING Shards: 2600 guild(s) on 2 shard(s): about 1300 per shard; about 1000 per shard is",
        ),
        ("3", 0, "ok      Shards: 2600 guild(s) on 3 shard(s): about 867 per shard"),
    ],
)
def test_shard_count_is_checked_against_the_guild_count(tmp_path, many_guilds, shards, code, expected):
    result = doctor(tmp_path, "--shard-count", shards, **DEV)
    assert result.returncode == code, result.stdout
    assert expected in result.stdout
    if code:
        assert "-> Run with --shard-count 3 or more." in result.stdout


def test_shard_count_comes_from_running_bots(tmp_path, many_guilds):
    ShardStatus.objects.create(shard_id=0, shard_count=2)
    result = doctor(tmp_path, **DEV)
    assert "2600 guild(s) on 2 shard(s)" in result.stdout
    ShardStatus.objects.create(shard_id=1, shard_count=4)
    result = doctor(tmp_path, **DEV)
    assert result.returncode == 1
    assert "running bot processes disagree on the shard count: [2, 4]" in result.stdout
