"""The bot's per-process cache of guild settings, revalidated against the stored version.

The dashboard bumps ``GuildSettings.version`` in the same transaction as every save. At most every
``BOT_SETTINGS_RECHECK_SECONDS`` per guild (default 1 s; 0 checks before every message) the bot reads just that
version (one indexed query) and reloads the snapshot only when it changed. This works the same on the embedded
default, where the web and bot processes share no cache, and with Redis.
"""

from __future__ import annotations

import time

from asgiref.sync import sync_to_async
from django.conf import settings

from guilds.effective import GuildSnapshot, refreshed


class SettingsCache:
    def __init__(self, recheck_seconds: float | None = None) -> None:
        self.recheck_seconds = (
            settings.BOT_SETTINGS_RECHECK_SECONDS if recheck_seconds is None else recheck_seconds
        )
        self._snapshots: dict[int, GuildSnapshot] = {}
        self._checked: dict[int, float] = {}

    async def get(self, guild_id: int) -> GuildSnapshot | None:
        """The snapshot of the guild with Discord id ``guild_id``; None when it is unknown or inactive."""
        cached = self._snapshots.get(guild_id)
        now = time.monotonic()
        if cached is not None and now - self._checked.get(guild_id, 0.0) < self.recheck_seconds:
            return cached
        snapshot = await sync_to_async(refreshed)(guild_id, cached)
        if snapshot is None:
            self.forget(guild_id)
        else:
            self._snapshots[guild_id] = snapshot
            self._checked[guild_id] = now
        return snapshot

    def forget(self, guild_id: int) -> None:
        self._snapshots.pop(guild_id, None)
        self._checked.pop(guild_id, None)
