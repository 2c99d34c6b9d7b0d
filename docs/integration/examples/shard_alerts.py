"""Example (docs/integration/logging-and-environment.md): settings read through ``config.env``, and logging.

A check an operator would want: warn when a shard carries more guilds than Discord recommends (about 1,000; at
2,500 Discord refuses the connection with close code 4011), optionally naming a webhook to alert.

In the product, the three ``env_*`` calls below are lines of ``config/settings.py`` (``SHARD_GUILD_WARNING =
env_int(...)``), each with a commented line in ``.env.example``, and the code reads ``settings.SHARD_GUILD_WARNING``
at call time. Here they sit in a function so that tests can set the environment and call it again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from config.env import env_bool, env_int, env_secret

logger = logging.getLogger(__name__)

DISCORD_MAX_GUILDS_PER_SHARD = 2500


@dataclass(frozen=True)
class ShardAlerts:
    enabled: bool
    guild_warning: int  # guilds on one shard above which we warn
    webhook_url: str | None  # a secret: the URL carries the webhook's token

    def __repr__(self) -> str:
        # Dataclasses print every field; this one must never show the secret, even in a traceback or a debugger.
        webhook = "set" if self.webhook_url else "unset"
        return f"ShardAlerts(enabled={self.enabled}, guild_warning={self.guild_warning}, webhook={webhook})"


def shard_alerts() -> ShardAlerts:
    """Read the configuration; a malformed value raises ImproperlyConfigured naming the variable."""
    return ShardAlerts(
        enabled=env_bool("SHARD_ALERTS", True),
        guild_warning=env_int("SHARD_GUILD_WARNING", 1000, minimum=1, maximum=DISCORD_MAX_GUILDS_PER_SHARD),
        # ALERT_WEBHOOK_URL, or the file named by ALERT_WEBHOOK_URL_FILE (a compose secret).
        webhook_url=env_secret("ALERT_WEBHOOK_URL"),
    )


def crowded_shards(guilds_per_shard: Mapping[int, int], alerts: ShardAlerts) -> list[int]:
    """The shards above the warning level, each logged once as a warning with structured fields."""
    if not alerts.enabled:
        return []
    crowded = sorted(shard for shard, count in guilds_per_shard.items() if count > alerts.guild_warning)
    for shard_id in crowded:
        count = guilds_per_shard[shard_id]
        # %-style arguments, not an f-string: the message is built only if the record is emitted, and the
        # values also travel as fields (extra=...) that LOG_FORMAT=json writes as JSON keys.
        logger.warning(
            "shard %d carries %d guilds (warning above %d, Discord's limit %d): run more shards",
            shard_id,
            count,
            alerts.guild_warning,
            DISCORD_MAX_GUILDS_PER_SHARD,
            extra={"shard_id": shard_id, "guild_count": count, "alert_webhook": bool(alerts.webhook_url)},
        )
    return crowded
