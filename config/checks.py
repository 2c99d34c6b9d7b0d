"""Parley's configuration checks (``manage.py parley_doctor``) as Django system checks, and those of no app.

Each app registers the checks of its own concern from ``AppConfig.ready()`` through ``register()`` below: the
bot token and shards in botcore, Discord login and SITE_URL in accounts, providers in llm. The checks here (the
production switches, the database, Redis) concern no app; botcore registers them beside its own because it ships
``parley_doctor``, the command that runs them: they exist exactly where there is a doctor to run them. (config
imports no app, and importing this module from config's own start-up would slow down every process that imports
``config``, the container healthcheck included.)

They are deployment checks tagged ``parley`` that run only when a database is named, which ``parley_doctor``
does (``manage.py check --deploy --database default --tag parley`` runs them too). Every command's implicit
check, the test runner's, ``migrate``'s and plain ``check --deploy`` leave them out: a laptop without Discord
credentials still migrates, and nothing contacts the database or Redis on start-up. An Error means Parley will
not work as configured, a Warning that it works but probably not as meant, an Info something to act on (the
redirect URL to copy), a Debug what was found fine; ``hint`` says how to fix it. ``obj`` is the topic shown
before the message. Secret values are never part of a message, only whether they are set.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks
from django.core.checks import CheckMessage

from config.probes import cache_probe, database_probe

TAG = "parley"
ParleyCheck = Callable[[], list[CheckMessage]]

_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}  # noqa: S104 (a host name, not a bind)


def register(*parley_checks: ParleyCheck) -> None:
    for check in parley_checks:
        checks.register(_when_asked(check), TAG, deploy=True)


def _when_asked(check: ParleyCheck) -> Callable[..., list[CheckMessage]]:
    # Not functools.wraps: Django reads the signature through __wrapped__ and wants **kwargs.
    def run(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[CheckMessage]:
        return check() if databases else []

    return run


def site() -> tuple[str, str, str]:
    """``(scheme, host, origin)`` of SITE_URL."""
    parts = urlsplit(settings.SITE_URL)
    return parts.scheme, parts.hostname or "", f"{parts.scheme}://{parts.netloc}"


def is_production() -> bool:
    """HTTPS switched on, or a public SITE_URL: the settings an operator deploys, not a laptop's."""
    host = site()[1]
    return bool(settings.SECURE_HTTPS) or not (host in _LOCAL_HOSTS or host.endswith(".localhost"))


def _generated_secret_key() -> bool:
    path = Path(settings.VAR_DIR) / "secret_key"
    try:
        return path.read_text(encoding="utf-8").strip() == settings.SECRET_KEY
    except OSError:
        return False


def check_production() -> list[CheckMessage]:
    topic = "Production"
    if not is_production():
        return [checks.Info("local SITE_URL: the production checks are skipped", obj=topic, id="parley.I031")]
    found: list[CheckMessage] = []
    if settings.DEBUG:
        found.append(
            checks.Error(
                "DJANGO_DEBUG is on: error pages show settings and code to anyone.",
                hint="Set DJANGO_DEBUG=false.",
                obj=topic,
                id="parley.E032",
            )
        )
    if _generated_secret_key():
        found.append(
            checks.Error(
                "DJANGO_SECRET_KEY is not set: the key was generated into var/ and changes with the volume.",
                hint="Set DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE): 50+ random characters, "
                "e.g. `python -c 'import secrets; print(secrets.token_urlsafe(50))'`.",
                obj=topic,
                id="parley.E033",
            )
        )
    elif len(settings.SECRET_KEY) < 50 or len(set(settings.SECRET_KEY)) < 5:
        found.append(
            checks.Warning(
                "DJANGO_SECRET_KEY is short or repetitive.",
                hint="Use 50+ random characters.",
                obj=topic,
                id="parley.W034",
            )
        )
    if not settings.SECURE_HTTPS:
        found.append(
            checks.Warning(
                "DJANGO_SECURE is off: no HSTS, and cookies may travel over plain HTTP.",
                hint="Serve over HTTPS and set DJANGO_SECURE=true (and DJANGO_BEHIND_PROXY=true behind a proxy).",
                obj=topic,
                id="parley.W035",
            )
        )
    return found or [checks.Debug("DEBUG off, secret key set, HTTPS on", obj=topic)]


def check_database() -> list[CheckMessage]:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    topic = "Database"
    probe = database_probe()
    if not probe.ok:
        hint = "Check DATABASE_URL (host, port, name, user) and DATABASE_PASSWORD, and that the server runs."
        return [
            checks.Error(
                f"{connection.vendor} is not reachable: {probe.reason}",
                hint=hint,
                obj=topic,
                id="parley.E041",
            )
        ]
    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if pending:
        return [
            checks.Error(
                f"{len(pending)} migration(s) not applied.",
                hint="Run `manage.py migrate` (compose runs the one-shot `migrate` service).",
                obj=topic,
                id="parley.E042",
            )
        ]
    return [checks.Debug(f"{connection.vendor} reachable, migrations applied", obj=topic)]


def check_redis() -> list[CheckMessage]:
    topic = "Redis"
    if not settings.REDIS_URL:
        level, id_ = (checks.WARNING, "parley.W051") if is_production() else (checks.INFO, "parley.I052")
        return [
            CheckMessage(
                level,
                "REDIS_URL is not set: the cache and live updates stay inside each process.",
                hint="Set REDIS_URL (redis://host:6379/0) when the web app runs more than one worker.",
                obj=topic,
                id=id_,
            )
        ]
    probe = cache_probe()
    if not probe.ok:
        hint = "Check REDIS_URL and that Redis runs (compose: the `redis` service)."
        return [checks.Error(f"not reachable: {probe.reason}", hint=hint, obj=topic, id="parley.E053")]
    return [checks.Debug("reachable", obj=topic)]
