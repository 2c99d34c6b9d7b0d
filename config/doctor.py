"""``manage.py parley_doctor``: checks the configuration an operator is about to run, and says how to fix it.

Each check returns findings; an ``error`` means Parley will not work as configured (the command exits 1), a
``warning`` that it works but probably not as meant. The checks are real: the database and Redis are contacted.
Secret values are never printed, only whether they are set.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import validate_host

Level = Literal["ok", "info", "warning", "error"]

# Discord's limits (FACTS.md): a shard above 2,500 guilds is closed with 4011; about 1,000 is recommended.
MAX_GUILDS_PER_SHARD = 2500
RECOMMENDED_GUILDS_PER_SHARD = 1000
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}  # noqa: S104 (a host name, not a bind)


@dataclass(frozen=True)
class Finding:
    level: Level
    topic: str
    message: str
    fix: str = ""


def _is_local(host: str) -> bool:
    return host in _LOCAL_HOSTS or host.endswith(".localhost")


def site() -> tuple[str, str, str]:
    """``(scheme, host, origin)`` of SITE_URL."""
    parts = urlsplit(settings.SITE_URL)
    return parts.scheme, parts.hostname or "", f"{parts.scheme}://{parts.netloc}"


def is_production() -> bool:
    """HTTPS switched on, or a public SITE_URL: the settings an operator deploys, not a laptop's."""
    return bool(settings.SECURE_HTTPS) or not _is_local(site()[1])


def oauth_redirect_url() -> str:
    from django.urls import reverse

    return settings.SITE_URL + reverse("discord_callback")


def check_bot_token() -> list[Finding]:
    token = settings.DISCORD_BOT_TOKEN
    if not token:
        return [
            Finding(
                "error",
                "Bot token",
                "DISCORD_BOT_TOKEN is not set: `runbot` cannot start.",
                "Developer Portal > your application > Bot > Reset Token; put it in DISCORD_BOT_TOKEN or in the "
                "file named by DISCORD_BOT_TOKEN_FILE (secrets/discord_bot_token.txt with compose).",
            )
        ]
    official = settings.DISCORD_API_BASE.startswith("https://discord.com/")
    if official and token.count(".") != 2:
        return [
            Finding(
                "warning",
                "Bot token",
                "DISCORD_BOT_TOKEN does not look like a bot token (three parts separated by dots).",
                "Copy the token from Developer Portal > Bot, not the client secret or the public key.",
            )
        ]
    return [Finding("ok", "Bot token", "set")]


def check_oauth() -> list[Finding]:
    findings: list[Finding] = []
    client_id, secret = settings.DISCORD_CLIENT_ID, settings.DISCORD_CLIENT_SECRET
    if not client_id or not secret:
        missing = " and ".join(
            name
            for name, value in (("DISCORD_CLIENT_ID", client_id), ("DISCORD_CLIENT_SECRET", secret))
            if not value
        )
        findings.append(
            Finding(
                "error",
                "Discord login",
                f"{missing} not set: nobody can log in to the dashboard with Discord.",
                "Developer Portal > your application > OAuth2: copy the Client ID and reset the Client Secret.",
            )
        )
    elif not client_id.isdigit():
        findings.append(
            Finding(
                "warning",
                "Discord login",
                "DISCORD_CLIENT_ID is not a number: it should be the application id.",
                "Copy the Client ID from Developer Portal > OAuth2 (also the application id).",
            )
        )
    else:
        findings.append(Finding("ok", "Discord login", "client id and secret set"))
    findings.append(
        Finding(
            "info",
            "Discord login",
            f"redirect URL: {oauth_redirect_url()}",
            "Add exactly this URL under Developer Portal > OAuth2 > Redirects.",
        )
    )
    return findings


def check_site_url() -> list[Finding]:
    scheme, host, origin = site()
    findings: list[Finding] = []
    if scheme not in {"http", "https"} or not host:
        return [
            Finding(
                "error",
                "SITE_URL",
                f"SITE_URL={settings.SITE_URL!r} is not an http(s) URL.",
                "Set SITE_URL to the dashboard's public address, e.g. https://parley.example.com.",
            )
        ]
    if not validate_host(host, settings.ALLOWED_HOSTS):
        findings.append(
            Finding(
                "error",
                "SITE_URL",
                f"{host} (from SITE_URL) is not in DJANGO_ALLOWED_HOSTS: every page, and Discord's redirect "
                "back after login, answers 400.",
                f"Add {host} to DJANGO_ALLOWED_HOSTS.",
            )
        )
    if scheme == "https" and origin not in settings.CSRF_TRUSTED_ORIGINS:
        findings.append(
            Finding(
                "warning",
                "SITE_URL",
                f"{origin} is not in CSRF_TRUSTED_ORIGINS: behind a proxy that rewrites the Host or the scheme, "
                "forms answer 403.",
                f"Set CSRF_TRUSTED_ORIGINS={origin}.",
            )
        )
    if is_production() and scheme != "https":
        findings.append(
            Finding(
                "error" if settings.SECURE_HTTPS else "warning",
                "SITE_URL",
                f"SITE_URL is {scheme}:// on a public host: Discord accepts plain-http redirect URLs only for "
                "localhost, and cookies travel unencrypted.",
                "Serve the dashboard over HTTPS and set SITE_URL=https://... with DJANGO_SECURE=true.",
            )
        )
    if not findings:
        findings.append(Finding("ok", "SITE_URL", f"{origin} matches DJANGO_ALLOWED_HOSTS"))
    return findings


def check_database() -> list[Finding]:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    if connection.vendor == "postgresql":
        # An unreachable host would otherwise wait for the kernel's TCP timeout.
        connection.settings_dict.setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as exc:
        return [
            Finding(
                "error",
                "Database",
                f"{connection.vendor} is not reachable: {type(exc).__name__}: {str(exc).strip()[:200]}",
                "Check DATABASE_URL (host, port, name, user) and DATABASE_PASSWORD, and that the server runs.",
            )
        ]
    if pending:
        return [
            Finding(
                "error",
                "Database",
                f"{len(pending)} migration(s) not applied.",
                "Run `manage.py migrate` (compose runs the one-shot `migrate` service).",
            )
        ]
    return [Finding("ok", "Database", f"{connection.vendor} reachable, migrations applied")]


def check_redis() -> list[Finding]:
    if not settings.REDIS_URL:
        level: Level = "warning" if is_production() else "info"
        return [
            Finding(
                level,
                "Redis",
                "REDIS_URL is not set: the cache and live updates stay inside each process.",
                "Set REDIS_URL (redis://host:6379/0) when the web app runs more than one worker.",
            )
        ]
    import uuid

    from django.core.cache import cache

    key = f"parley-doctor:{uuid.uuid4().hex}"
    try:
        cache.set(key, "1", timeout=10)
        answered = cache.get(key) == "1"
        cache.delete(key)
    except Exception as exc:
        answered, reason = False, f"{type(exc).__name__}: {str(exc).strip()[:200]}"
    else:
        reason = "the value written was not read back"
    if not answered:
        return [
            Finding(
                "error",
                "Redis",
                f"not reachable: {reason}",
                "Check REDIS_URL and that Redis runs (compose: the `redis` service).",
            )
        ]
    return [Finding("ok", "Redis", "reachable")]


def check_llm() -> list[Finding]:
    from llm import registry

    configured = [p.label for p in registry.providers() if p.env_var and registry.provider_available(p.id)]
    wanted = settings.LLM_DEFAULT_MODEL
    provider = registry.provider_of(wanted)
    findings: list[Finding] = []
    if provider is None:
        findings.append(
            Finding(
                "error",
                "LLM",
                f"LLM_DEFAULT_MODEL={wanted!r} names no known provider.",
                "Use <provider>/<model> with provider openai, anthropic, gemini, xai or offline.",
            )
        )
    elif not registry.provider_available(provider):
        findings.append(
            Finding(
                "error",
                "LLM",
                f"LLM_DEFAULT_MODEL={wanted} but its provider has no key: new guilds get the offline model.",
                registry.unavailable_reason(provider) or "",
            )
        )
    if not configured:
        findings.append(
            Finding(
                "warning" if provider != "offline" or is_production() else "info",
                "LLM",
                "no provider key is set: only the offline echo model answers.",
                "Set OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY or XAI_API_KEY (or their *_FILE).",
            )
        )
    elif not findings:
        findings.append(Finding("ok", "LLM", f"providers: {', '.join(configured)}; default model {wanted}"))
    return findings


def check_shards(planned: int | None = None) -> list[Finding]:
    from django.utils import timezone

    from botcore.models import STALE_AFTER, ShardStatus
    from guilds.models import Guild

    guilds = Guild.objects.filter(is_active=True).count()
    # Running processes refresh their rows; rows of shards that no longer exist keep an old count.
    fresh = set(
        ShardStatus.objects.filter(updated_at__gte=timezone.now() - STALE_AFTER).values_list(
            "shard_count", flat=True
        )
    )
    if planned is None and len(fresh) > 1:
        return [
            Finding(
                "error",
                "Shards",
                f"running bot processes disagree on the shard count: {sorted(fresh)}.",
                "Give every `runbot` process the same --shard-count, with disjoint --shard-ids.",
            )
        ]
    latest = ShardStatus.objects.order_by("-updated_at").values_list("shard_count", flat=True).first()
    shard_count = planned or (fresh.pop() if fresh else latest)
    if shard_count is None:
        return [Finding("info", "Shards", f"{guilds} guild(s); no bot has reported a shard count yet")]
    per_shard = math.ceil(guilds / shard_count)
    needed = max(1, math.ceil(guilds / RECOMMENDED_GUILDS_PER_SHARD))
    summary = f"{guilds} guild(s) on {shard_count} shard(s): about {per_shard} per shard"
    if per_shard > MAX_GUILDS_PER_SHARD:
        return [
            Finding(
                "error",
                "Shards",
                f"{summary}; Discord refuses more than {MAX_GUILDS_PER_SHARD} (close code 4011).",
                f"Run with --shard-count {needed} or more.",
            )
        ]
    if per_shard > RECOMMENDED_GUILDS_PER_SHARD:
        return [
            Finding(
                "warning",
                "Shards",
                f"{summary}; about {RECOMMENDED_GUILDS_PER_SHARD} per shard is recommended.",
                f"Plan for --shard-count {needed}.",
            )
        ]
    return [Finding("ok", "Shards", summary)]


def _generated_secret_key() -> bool:
    path = Path(settings.VAR_DIR) / "secret_key"
    try:
        return path.read_text(encoding="utf-8").strip() == settings.SECRET_KEY
    except OSError:
        return False


def check_production() -> list[Finding]:
    if not is_production():
        return [Finding("info", "Production", "local SITE_URL: the production checks are skipped")]
    findings: list[Finding] = []
    if settings.DEBUG:
        findings.append(
            Finding(
                "error",
                "Production",
                "DJANGO_DEBUG is on: error pages show settings and code to anyone.",
                "Set DJANGO_DEBUG=false.",
            )
        )
    if _generated_secret_key():
        findings.append(
            Finding(
                "error",
                "Production",
                "DJANGO_SECRET_KEY is not set: the key was generated into var/ and changes with the volume.",
                "Set DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE): 50+ random characters, "
                "e.g. `python -c 'import secrets; print(secrets.token_urlsafe(50))'`.",
            )
        )
    elif len(settings.SECRET_KEY) < 50 or len(set(settings.SECRET_KEY)) < 5:
        findings.append(
            Finding(
                "warning",
                "Production",
                "DJANGO_SECRET_KEY is short or repetitive.",
                "Use 50+ random characters.",
            )
        )
    if not settings.SECURE_HTTPS:
        findings.append(
            Finding(
                "warning",
                "Production",
                "DJANGO_SECURE is off: no HSTS, and cookies may travel over plain HTTP.",
                "Serve over HTTPS and set DJANGO_SECURE=true (and DJANGO_BEHIND_PROXY=true behind a proxy).",
            )
        )
    if not findings:
        findings.append(Finding("ok", "Production", "DEBUG off, secret key set, HTTPS on"))
    return findings


def run_checks(*, shard_count: int | None = None) -> list[Finding]:
    checks: list[Callable[[], list[Finding]]] = [
        check_bot_token,
        check_oauth,
        check_site_url,
        check_production,
        check_database,
        check_redis,
        check_llm,
    ]
    findings = [finding for check in checks for finding in check()]
    database_ok = not any(f.topic == "Database" and f.level == "error" for f in findings)
    if database_ok:
        findings += check_shards(shard_count)
    else:
        findings.append(Finding("info", "Shards", "skipped: the database is not reachable"))
    return findings
