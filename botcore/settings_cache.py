"""The bot's per-process cache of guild settings, revalidated against the stored version.

The dashboard bumps ``GuildSettings.version`` in the same transaction as every save. At most every
``BOT_SETTINGS_RECHECK_SECONDS`` per guild (default 1 s; 0 checks before every message) the bot reads just that
version (one indexed query) and reloads the snapshot only when it changed. This works the same on the embedded
default, where the web and bot processes share no cache, and with Redis. When the database does not answer
(after ``BOT_DATABASE_ATTEMPTS`` tries), the last known settings are used.
"""

from __future__ import annotations

import asyncio
import logging
import time

from django.conf import settings
from django.db import DatabaseError

from config.probes import database_call
from guilds.effective import SETTINGS_GROUP, SettingsSnapshot, crosses_processes, refreshed

logger = logging.getLogger(__name__)


class SettingsCache:
    def __init__(self, recheck_seconds: float | None = None) -> None:
        self.recheck_seconds = (
            settings.BOT_SETTINGS_RECHECK_SECONDS if recheck_seconds is None else recheck_seconds
        )
        self._snapshots: dict[int, SettingsSnapshot] = {}
        self._checked: dict[int, float] = {}
        self._reading = asyncio.Lock()

    async def get(self, guild_id: int) -> SettingsSnapshot | None:
        """The snapshot of the guild with Discord id ``guild_id``; None when it is unknown or inactive."""
        cached = self._snapshots.get(guild_id)
        now = time.monotonic()
        if cached is not None and now - self._checked.get(guild_id, 0.0) < self.recheck_seconds:
            return cached
        try:
            snapshot = await self._read(guild_id, cached)
        except DatabaseError:
            if cached is None:
                raise
            # The database is away: the last known settings are better than no answer. Checked again next time.
            logger.warning("settings of guild %s: database unreachable, using the cached version", guild_id)
            return cached
        if snapshot is None:
            self.forget(guild_id)
        else:
            self._snapshots[guild_id] = snapshot
            self._checked[guild_id] = now
        return snapshot

    async def _read(self, guild_id: int, cached: SettingsSnapshot | None) -> SettingsSnapshot | None:
        # One reader at a time: they share the bot's database thread anyway, and while the database is away the
        # first one to fail tells the others not to wait for the pool as well.
        async with self._reading:
            return await database_call(lambda: refreshed(guild_id, cached), what="settings")

    async def listen(self) -> None:
        """With Redis: apply the dashboard's pushed changes at once (``guilds.effective.settings_push``). Runs until
        cancelled; a dropped connection is retried, and the version check covers what was missed meanwhile."""
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        if layer is None or not crosses_processes():
            return
        while True:
            try:
                channel = await layer.new_channel()
                await layer.group_add(SETTINGS_GROUP, channel)
                logger.info("listening for settings changes on the channel layer")
                while True:
                    message = await layer.receive(channel)
                    if message.get("type") == "settings.changed" and isinstance(message.get("guild_id"), int):
                        self.forget(message["guild_id"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning(
                    "settings push channel lost (%s); the version check carries on", type(exc).__name__
                )
                await asyncio.sleep(5)

    def forget(self, guild_id: int) -> None:
        self._snapshots.pop(guild_id, None)
        self._checked.pop(guild_id, None)
