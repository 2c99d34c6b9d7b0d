"""``parley_doctor`` checks of the bot token and the shard count (registered in ``BotcoreConfig.ready``)."""

from __future__ import annotations

import math
from contextvars import ContextVar

from django.conf import settings
from django.core import checks
from django.core.checks import CheckMessage
from django.db import DatabaseError
from django.utils import timezone

from botcore.models import STALE_AFTER, ShardStatus
from config.probes import database_probe
from guilds.models import Guild

# Discord's limits: a shard above 2,500 guilds is closed with 4011; about 1,000 is recommended.
MAX_GUILDS_PER_SHARD = 2500
RECOMMENDED_GUILDS_PER_SHARD = 1000

# The --shard-count an operator plans to give runbot (parley_doctor --shard-count); None: what running bots said.
planned_shard_count: ContextVar[int | None] = ContextVar("planned_shard_count", default=None)


def check_bot_token() -> list[CheckMessage]:
    topic = "Bot token"
    token = settings.DISCORD_BOT_TOKEN
    if not token:
        return [
            checks.Error(
                "DISCORD_BOT_TOKEN is not set: `runbot` cannot start.",
                hint="Developer Portal > your application > Bot > Reset Token; put it in DISCORD_BOT_TOKEN or in "
                "the file named by DISCORD_BOT_TOKEN_FILE (secrets/discord_bot_token.txt with compose).",
                obj=topic,
                id="parley.E001",
            )
        ]
    official = settings.DISCORD_API_BASE.startswith("https://discord.com/")
    if official and token.count(".") != 2:
        return [
            checks.Warning(
                "DISCORD_BOT_TOKEN does not look like a bot token (three parts separated by dots).",
                hint="Copy the token from Developer Portal > Bot, not the client secret or the public key.",
                obj=topic,
                id="parley.W002",
            )
        ]
    return [checks.Debug("set", obj=topic)]


def check_shards() -> list[CheckMessage]:
    topic = "Shards"
    if not database_probe().ok:
        return [checks.Info("skipped: the database is not reachable", obj=topic, id="parley.I071")]
    planned = planned_shard_count.get()
    try:
        guilds = Guild.objects.filter(is_active=True).count()
        # Running processes refresh their rows; rows of shards that no longer exist keep an old count.
        fresh = set(
            ShardStatus.objects.filter(updated_at__gte=timezone.now() - STALE_AFTER).values_list(
                "shard_count", flat=True
            )
        )
        latest = ShardStatus.objects.order_by("-updated_at").values_list("shard_count", flat=True).first()
    except DatabaseError:
        return [checks.Info("skipped: the database has no tables yet", obj=topic, id="parley.I072")]
    if planned is None and len(fresh) > 1:
        return [
            checks.Error(
                f"running bot processes disagree on the shard count: {sorted(fresh)}.",
                hint=(
                    "Give every `runbot` process the same --shard-count, with disjoint --shard-ids, "
                    "or run them all with --shards auto."
                ),
                obj=topic,
                id="parley.E073",
            )
        ]
    shard_count = planned or (fresh.pop() if fresh else latest)
    if shard_count is None:
        return [
            checks.Info(
                f"{guilds} guild(s); no bot has reported a shard count yet", obj=topic, id="parley.I074"
            )
        ]
    per_shard = math.ceil(guilds / shard_count)
    needed = max(1, math.ceil(guilds / RECOMMENDED_GUILDS_PER_SHARD))
    summary = f"{guilds} guild(s) on {shard_count} shard(s): about {per_shard} per shard"
    if per_shard > MAX_GUILDS_PER_SHARD:
        return [
            checks.Error(
                f"{summary}; Discord refuses more than {MAX_GUILDS_PER_SHARD} (close code 4011).",
                hint=f"Run with --shard-count {needed} or more.",
                obj=topic,
                id="parley.E075",
            )
        ]
    if per_shard > RECOMMENDED_GUILDS_PER_SHARD:
        return [
            checks.Warning(
                f"{summary}; about {RECOMMENDED_GUILDS_PER_SHARD} per shard is recommended.",
                hint=f"Plan for --shard-count {needed}.",
                obj=topic,
                id="parley.W076",
            )
        ]
    return [checks.Debug(summary, obj=topic)]
