"""Example cog (docs/integration/adding-a-cog.md): ``/ping``, and the words "parley ping" in a channel.

To ship it, copy this file to ``botcore/cogs/ping.py``: ``ParleyBot.setup_hook`` loads every module in
``botcore/cogs/`` and then syncs the slash commands, so there is nothing to register anywhere else.
"""

from __future__ import annotations

import logging
import math

import discord
from asgiref.sync import sync_to_async
from discord import app_commands
from discord.ext import commands

from botcore.bot import ParleyBot
from botcore.conversation import channel_key
from botcore.replying import NO_MENTIONS, REPLY_MENTIONS
from guilds.effective import SettingsSnapshot
from llm.usage import calls_today

logger = logging.getLogger(__name__)

KEYWORD = "parley ping"


def shard_latency(bot: commands.AutoShardedBot, guild: discord.Guild | None) -> str:
    """The heartbeat latency of the shard that carries ``guild`` (DMs arrive on shard 0)."""
    shard = bot.get_shard(guild.shard_id if guild else 0)
    latency = shard.latency if shard is not None else math.inf
    return f"{latency * 1000:.0f} ms" if math.isfinite(latency) else "unknown"


class Ping(commands.Cog):
    """Is Parley there, and how fast? Discord glue only: the answer comes from the ORM and the bot's state."""

    def __init__(self, bot: ParleyBot) -> None:
        self.bot = bot

    async def _snapshot(self, guild_id: int | None) -> SettingsSnapshot | None:
        if guild_id is None:
            return None
        # At most one indexed query: the bot's cache reloads only when someone saved a change.
        return await self.bot.settings.get(guild_id)

    async def _status(
        self, guild: discord.Guild | None, snapshot: SettingsSnapshot | None, channel_id: int, user_id: int
    ) -> str:
        text = f"Pong! Gateway latency {shard_latency(self.bot, guild)}."
        if snapshot is None or snapshot.guild_pk is None:
            return text
        # The channel's override, else the guild's model, else the instance default: what the chat cog would use.
        model = snapshot.effective(channel_id).model
        # The ORM is synchronous: it runs in a worker thread, never on the event loop (it would block the
        # gateway heartbeat and Discord would drop the connection).
        asked = await sync_to_async(calls_today)(snapshot.guild_pk, user_id)
        return f"{text} This channel uses {model}; you have asked Parley {asked} time(s) today."

    @app_commands.command(name="ping")
    async def ping(self, interaction: discord.Interaction) -> None:
        """Check that Parley is listening, and how fast."""
        channel_id = channel_key(interaction.channel) if interaction.channel else 0
        snapshot = await self._snapshot(interaction.guild_id)
        text = await self._status(interaction.guild, snapshot, channel_id, interaction.user.id)
        # Only the person who asked sees the answer; LLM-free text, but mentions stay off on principle.
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        # Every cog's on_message sees every message: bail out cheaply before touching the database.
        if message.author.bot or message.content.strip().lower() != KEYWORD:
            return
        channel_id = channel_key(message.channel)
        snapshot = await self._snapshot(message.guild.id if message.guild else None)
        if message.guild is not None and (
            snapshot is None or not snapshot.enabled or not snapshot.allows_channel(channel_id)
        ):
            return  # the same channel rules as the chat cog
        logger.info("ping from %s in channel %s", message.author.id, message.channel.id)
        text = await self._status(message.guild, snapshot, channel_id, message.author.id)
        await message.reply(text, allowed_mentions=REPLY_MENTIONS)


async def setup(bot: ParleyBot) -> None:
    await bot.add_cog(Ping(bot))
