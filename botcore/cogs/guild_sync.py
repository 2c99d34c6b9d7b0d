"""Guild sync: keeps the Guild table (and channels, settings, owner memberships) in step with Discord."""

from __future__ import annotations

import asyncio
import logging

import discord
from asgiref.sync import sync_to_async
from discord.ext import commands

from botcore.bot import ParleyBot
from botcore.sync import ChannelSnapshot, GuildSnapshot, guild_leave, guilds_reconcile, guilds_upsert
from config.probes import on_worker_thread

logger = logging.getLogger(__name__)


def snapshot(guild: discord.Guild) -> GuildSnapshot:
    channels = [
        ChannelSnapshot(
            discord_id=channel.id,
            name=channel.name,
            kind=channel.type.value,
            parent_discord_id=getattr(channel, "parent_id", None),
            position=getattr(channel, "position", 0),
        )
        for channel in [*guild.channels, *guild.threads]
    ]
    return GuildSnapshot(
        discord_id=guild.id,
        name=guild.name,
        icon=guild.icon.key if guild.icon else "",
        owner_discord_id=guild.owner_id,
        shard_id=guild.shard_id,
        member_count=guild.member_count or 0,
        joined_at=guild.me.joined_at if guild.me else None,
        channels=channels,
    )


class GuildSync(commands.Cog):
    def __init__(self, bot: ParleyBot) -> None:
        self.bot = bot
        # One shard's sync at a time: shards turn READY together at start-up, and their syncs side by side would
        # hold every shard's snapshots and rows in memory at once (and only queue for SQLite's write lock).
        self._syncing = asyncio.Lock()

    @commands.Cog.listener()
    async def on_shard_connect(self, shard_id: int) -> None:
        self.bot.synced_shards.discard(shard_id)

    @commands.Cog.listener()
    async def on_shard_ready(self, shard_id: int) -> None:
        async with self._syncing:
            await self._sync_shard(shard_id)

    async def _sync_shard(self, shard_id: int) -> None:
        guilds = [guild for guild in self.bot.guilds if guild.shard_id == shard_id and not guild.unavailable]
        snapshots = [snapshot(guild) for guild in guilds]
        # Thousands of rows at start-up: a thread (and connection) of its own, so messages and /health, which use
        # the shared database thread, do not queue behind the sync.
        joined = await on_worker_thread(lambda: guilds_upsert(snapshots))
        left = await on_worker_thread(
            lambda: guilds_reconcile(
                shard_ids=[shard_id], shard_count=self.bot.shard_count or 1, present={g.id for g in guilds}
            )
        )
        self.bot.synced_shards.add(shard_id)
        logger.info(
            "shard %s synced %d guilds (%d joined, %d left while offline)",
            shard_id,
            len(guilds),
            len(joined),
            len(left),
        )

    @commands.Cog.listener()
    async def on_guild_join(self, guild: discord.Guild) -> None:
        await sync_to_async(guilds_upsert)([snapshot(guild)])
        self.bot.settings.forget(guild.id)
        logger.info("joined guild %s", guild.id)

    @commands.Cog.listener()
    async def on_guild_update(self, before: discord.Guild, after: discord.Guild) -> None:
        await sync_to_async(guilds_upsert)([snapshot(after)])

    @commands.Cog.listener()
    async def on_guild_channel_create(self, channel: discord.abc.GuildChannel) -> None:
        await sync_to_async(guilds_upsert)([snapshot(channel.guild)])

    @commands.Cog.listener()
    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        await sync_to_async(guilds_upsert)([snapshot(channel.guild)])

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        await sync_to_async(guild_leave)(guild.id)
        self.bot.settings.forget(guild.id)
        logger.info("left guild %s", guild.id)


async def setup(bot: ParleyBot) -> None:
    await bot.add_cog(GuildSync(bot))
