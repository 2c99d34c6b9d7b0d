"""Work that needs the ORM, run in a fresh Django process by ``bench.common.django_task``.

    python -m bench.tasks NAME '{"json": "kwargs"}'     # prints "RESULT <json>" on its last line

The environment chooses the database (``SQLITE_PATH`` or ``DATABASE_URL``) and the cache (``REDIS_URL``), so the
benchmark processes themselves never import Django and one run can measure several databases.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import django

TASKS: dict[str, Callable[..., Any]] = {}


def task(fn: Callable[..., Any]) -> Callable[..., Any]:
    TASKS[fn.__name__] = fn
    return fn


def _status() -> dict[str, int]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


@task
def guild_settings(
    *, discord_id: int, name: str = "Bench Guild", wait: float = 0, **fields: Any
) -> dict[str, Any]:
    """Create the guild (as the bot's sync would) unless it exists, then change its settings and bump the version
    so a running bot reloads them. ``wait``: seconds to wait for the bot to have synced the guild first."""
    from django.db import transaction
    from django.db.models import F

    from guilds.models import Guild, GuildSettings

    deadline = time.monotonic() + wait
    while wait and not Guild.objects.filter(discord_id=discord_id).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    with transaction.atomic():
        if not Guild.objects.filter(discord_id=discord_id).exists():
            Guild.objects.create_with_settings(discord_id=discord_id, name=name)
        updated = GuildSettings.objects.filter(guild__discord_id=discord_id).update(
            version=F("version") + 1, **fields
        )
    return {"updated": updated}


@task
def settings_saves(*, discord_id: int, saves: int, gap: float) -> list[dict[str, Any]]:
    """Toggle the guild's system prompt ``saves`` times, ``gap`` seconds apart, through the service the dashboard
    uses (so a running bot hears of it as it would in production). Returns the wall time before each save."""
    from guilds import services
    from guilds.models import Guild

    deadline = time.monotonic() + 30
    while not Guild.objects.filter(discord_id=discord_id).exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the bot never synced the guild")
        time.sleep(0.1)
    guild = Guild.objects.get(discord_id=discord_id)
    done = []
    for i in range(saves):
        time.sleep(gap)
        prompt = "" if i % 2 == 0 else "You are Parley, brief and kind."
        done.append({"at": time.time(), "prompt": prompt})
        services.settings_update(guild=guild, actor=None, changes={"system_prompt": prompt})
    time.sleep(gap)  # the last save's answers, too
    return done


@task
def usage_outcomes() -> dict[str, int]:
    from django.db.models import Count

    from llm.models import Usage

    return dict(Usage.objects.values_list("outcome").annotate(n=Count("id")).values_list("outcome", "n"))


GUILD_BASE = 1_100_000_000_000_000_000  # snowflake-sized ids for the dashboard's guilds
ACTIONS = ["settings.update", "channel_override.set", "member.add", "member.role_change", "settings.revert"]


def _login(user: Any) -> dict[str, str]:
    """A real session in the configured engine (the Redis cache here) and the cookie that carries it."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    return {"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value}


@task
def dashboard_fixture(
    *, guilds: int = 20, channels: int = 12, overrides: int = 5, audit_rows: int = 1000
) -> Any:
    """An owner of ``guilds`` guilds (the first one busy: channels, overrides, audit rows) and an owner of one
    bare guild, each with a session. The bare one is the "small data" side of the query-count comparison."""
    from accounts.models import User
    from audit.models import AuditLog
    from guilds.models import Channel, ChannelSettings, Guild, Membership

    owner = User.objects.create_user(
        username="bench-owner", discord_id=9_000_000_000_000_001, global_name="Owner"
    )
    loner = User.objects.create_user(
        username="bench-small", discord_id=9_000_000_000_000_002, global_name="Small"
    )
    made = []
    for i in range(guilds + 1):
        guild = Guild.objects.create_with_settings(
            discord_id=GUILD_BASE + i, name=f"Bench Guild {i:02d}", owner_discord_id=owner.discord_id
        )
        Membership.objects.create(
            user=loner if i == guilds else owner, guild=guild, role=Membership.Role.OWNER
        )
        count = 1 if i == guilds else channels
        Channel.objects.bulk_create(
            Channel(
                guild=guild, discord_id=GUILD_BASE + 1_000_000 + i * 1000 + c, name=f"channel-{c}", position=c
            )
            for c in range(count)
        )
        made.append(guild)
    busy, small = made[0], made[-1]
    ChannelSettings.objects.bulk_create(
        ChannelSettings(
            guild=busy, channel_id=GUILD_BASE + 1_000_000 + c, system_prompt=f"Persona {c}", model=""
        )
        for c in range(overrides)
    )
    _audit_append(
        {
            "guild_id": (busy if i < audit_rows else small).pk,
            "actor_id": owner.pk,
            "action": ACTIONS[i % len(ACTIONS)],
            "target": "settings",
            "changes": {"temperature": [0.7, 0.5], "model": ["a", "b"]},
            "ip": "127.0.0.1",
        }
        for i in range(audit_rows + audit_rows // 100)  # and a few for the small guild
    )
    return {
        "busy": busy.discord_id,
        "busy_pk": busy.pk,
        "small": small.discord_id,
        "owner_pk": owner.pk,
        "owner": _login(owner),
        "small_owner": _login(loner),
        "busy_audit_rows": AuditLog.objects.filter(guild=busy).count(),
    }


def _audit_append(entries: Iterable[dict[str, Any]], batch: int = 10_000) -> None:
    """Append entries through ``audit.record_many`` (the product's own write path, hash chain included), in
    batches so that a million rows fit in memory."""
    from audit import record_many

    rows: list[dict[str, Any]] = []
    for entry in entries:
        rows.append(entry)
        if len(rows) == batch:
            record_many(rows)
            rows = []
    record_many(rows)


@task
def audit_fill(*, guild_pk: int, actor_pk: int, total: int) -> dict[str, int]:
    """Grow one guild's audit log to ``total`` chained rows (``audit_verify`` passes afterwards). Returns the row
    count and an id in the middle, for a deep keyset page."""
    from audit.models import AuditLog

    have = AuditLog.objects.filter(guild_id=guild_pk).count()
    _audit_append(
        {
            "guild_id": guild_pk,
            "actor_id": actor_pk,
            "action": ACTIONS[i % len(ACTIONS)],
            "target": "settings",
            "changes": {"temperature": [0.7, 0.5]},
            "ip": "127.0.0.1",
        }
        for i in range(max(total - have, 0))
    )
    ids = AuditLog.objects.filter(guild_id=guild_pk).order_by("id").values_list("id", flat=True)
    count = ids.count()
    return {"rows": count, "middle_id": ids[count // 2]}


@task
def query_counts(*, pages: list[list[Any]]) -> list[dict[str, Any]]:
    """Queries per page, counted in-process with CaptureQueriesContext after one warm-up request (so the session
    and the per-user caches are as on a steady server). ``pages``: [label, path, username]."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from accounts.models import User

    out = []
    for label, path, username in pages:
        client = Client()
        client.force_login(User.objects.get(username=username))
        client.get(path)
        with CaptureQueriesContext(connection) as captured:
            response = client.get(path)
        out.append({"label": label, "path": path, "status": response.status_code, "queries": len(captured)})
    return out


@task
def web_memory(*, paths: list[str], requests: int, username: str) -> dict[str, Any]:
    """``requests`` GETs round-robin over ``paths`` with django.test.Client in this fresh interpreter: RSS along
    the way, and whether anything imported litellm. Paths that do not answer 200 are reported and left out."""
    from django.test import Client

    from accounts.models import User

    client = Client()
    client.force_login(User.objects.get(username=username))
    statuses = {path: client.get(path).status_code for path in paths}
    served = [path for path, status in statuses.items() if status == 200]
    rss = {"after set-up and one request a page": _status()["VmRSS"]}
    checkpoints = {1_000, requests // 2, requests}
    for i in range(1, requests + 1):
        client.get(served[i % len(served)])
        if i in checkpoints:
            rss[f"after {i:,} requests"] = _status()["VmRSS"]
    return {
        "statuses": statuses,
        "rss_kb": rss,
        "peak_kb": _status()["VmHWM"],
        "litellm": sorted(m for m in sys.modules if m == "litellm" or m.startswith("litellm.")),
        "modules": len(sys.modules),
    }


def main() -> None:
    name, raw = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "{}")
    django.setup()
    result = TASKS[name](**json.loads(raw))
    print("RESULT " + json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main()
