"""Shard status: every state change and a periodic heartbeat go to the ShardStatus table."""

from __future__ import annotations

import logging
import math

from asgiref.sync import sync_to_async
from discord.ext import commands, tasks
from django.conf import settings
from django.db import DatabaseError

from botcore.bot import ParleyBot
from botcore.models import ShardStatus
from botcore.status import ShardReading, shard_set_state, shards_report
from config.probes import database_outage

logger = logging.getLogger(__name__)
Status = ShardStatus.Status


class ShardStatusCog(commands.Cog, name="ShardStatus"):
    def __init__(self, bot: ParleyBot) -> None:
        self.bot = bot
        self.report.change_interval(seconds=settings.BOT_STATUS_INTERVAL_SECONDS)

    async def cog_load(self) -> None:
        self.report.start()

    async def cog_unload(self) -> None:
        self.report.cancel()

    @property
    def states(self) -> dict[int, str]:
        return self.bot.shard_states

    async def _set(self, shard_id: int, status: str, **counts: bool) -> None:
        if shard_id not in self.bot.own_shard_ids:  # handed over (--shards auto): the row is the new owner's
            return
        self.states[shard_id] = status
        logger.info("shard %s is %s", shard_id, status)
        await sync_to_async(shard_set_state)(
            shard_id=shard_id, shard_count=self.bot.shard_count or 1, status=status, **counts
        )

    @commands.Cog.listener()
    async def on_shard_connect(self, shard_id: int) -> None:
        await self._set(shard_id, Status.CONNECTING, connected=True)

    @commands.Cog.listener()
    async def on_shard_ready(self, shard_id: int) -> None:
        await self._set(shard_id, Status.READY)
        await self.report_now()

    @commands.Cog.listener()
    async def on_shard_resumed(self, shard_id: int) -> None:
        await self._set(shard_id, Status.READY, resumed=True)

    @commands.Cog.listener()
    async def on_shard_disconnect(self, shard_id: int) -> None:
        # discord.py resumes on its own unless we are closing.
        await self._set(shard_id, Status.DISCONNECTED if self.bot.is_closed() else Status.RESUMING)

    @tasks.loop(seconds=15)
    async def report(self) -> None:
        if database_outage.active:
            return
        try:
            await self.report_now()
        except DatabaseError as exc:  # the next report tries again; /health says the database is away
            logger.warning("shard status not written: database unreachable (%s)", type(exc).__name__)

    @report.error
    async def report_error(self, error: BaseException) -> None:
        logger.exception("shard status report failed", exc_info=error)
        self.report.restart()

    async def report_now(self) -> None:
        readings = []
        guild_counts: dict[int, int] = {}
        for guild in self.bot.guilds:
            guild_counts[guild.shard_id] = guild_counts.get(guild.shard_id, 0) + 1
        own = set(self.bot.own_shard_ids)
        for shard_id, shard in self.bot.shards.items():
            if shard_id not in own:
                continue
            latency = shard.latency
            latency_ms = None if shard.is_closed() or not math.isfinite(latency) else round(latency * 1000, 1)
            readings.append(ShardReading(shard_id, latency_ms, guild_counts.get(shard_id, 0)))
        if readings:
            await sync_to_async(shards_report)(
                shard_count=self.bot.shard_count or 1, readings=readings, statuses=dict(self.states)
            )


async def setup(bot: ParleyBot) -> None:
    await bot.add_cog(ShardStatusCog(bot))
