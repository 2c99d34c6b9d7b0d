"""Slash commands: /ask, /parley settings, /parley model."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator

import discord
from asgiref.sync import sync_to_async
from discord import app_commands
from discord.ext import commands
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError

from botcore.bot import ParleyBot
from botcore.conversation import channel_key
from botcore.replying import DATABASE_DOWN, EMPTY_ANSWER, INTERRUPTED_NOTICE, NO_MENTIONS, persist
from botcore.text import split_message
from guilds import services
from guilds.effective import SettingsSnapshot
from llm import registry
from llm.answering import Asker, answer
from llm.models import Usage
from llm.prompting import Turn
from llm.usage import usage_record_later

logger = logging.getLogger(__name__)


def _dashboard_url(guild_id: int) -> str:
    return f"{settings.SITE_URL}/dashboard/guilds/{guild_id}/settings/"


async def _refuse(interaction: discord.Interaction, text: str) -> None:
    await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)


class SlashCommands(commands.Cog):
    parley = app_commands.Group(name="parley", description="Parley's settings for this server")

    def __init__(self, bot: ParleyBot) -> None:
        self.bot = bot

    async def _snapshot(self, interaction: discord.Interaction) -> SettingsSnapshot | None:
        if interaction.guild_id is None:
            return SettingsSnapshot.for_dm()
        return await self.bot.settings.get(interaction.guild_id)

    @app_commands.command(name="ask")
    @app_commands.describe(prompt="What to ask the model")
    async def ask(self, interaction: discord.Interaction, prompt: app_commands.Range[str, 1, 2000]) -> None:
        """Ask Parley a question with this server's prompt and model."""
        channel_id = channel_key(interaction.channel) if interaction.channel else 0
        try:
            # Discord wants a first answer within 3 s: the settings get 2 of them (they are usually cached).
            snapshot = await asyncio.wait_for(self._snapshot(interaction), timeout=2.0)
        except (DatabaseError, TimeoutError):
            await self._refuse_recorded(interaction, DATABASE_DOWN, Usage.Outcome.UNCHECKED)
            return
        refusal = None
        if snapshot is None or not (snapshot.enabled and snapshot.allows_channel(channel_id)):
            refusal = "Parley is not enabled in this channel."
        elif interaction.guild_id is None and not snapshot.answers_dm_from(interaction.user.id):
            refusal = "Parley answers direct messages only for the people its operator chose."
        if refusal is not None:
            guild_pk = snapshot.guild_pk if snapshot is not None else None
            await self._refuse_recorded(interaction, refusal, Usage.Outcome.DISABLED, guild_pk)
            return
        assert snapshot is not None
        if not self.bot.accepting:
            await self._refuse_recorded(
                interaction, INTERRUPTED_NOTICE, Usage.Outcome.INTERRUPTED, snapshot.guild_pk
            )
            return
        # Discord wants an answer within 3 s; the model may take longer.
        await interaction.response.defer(thinking=True)

        async def deliver(deltas: AsyncIterator[str]) -> None:
            text = "".join([piece async for piece in deltas])
            for chunk in split_message(text) or [EMPTY_ANSWER]:
                send = functools.partial(interaction.followup.send, chunk, allowed_mentions=NO_MENTIONS)
                await persist(send, "followup")

        try:
            with self.bot.answering():
                outcome = await answer(
                    settings=snapshot.effective(channel_id),
                    turns=[Turn(role="user", text=prompt, speaker=interaction.user.display_name)],
                    asker=Asker(interaction.user.id, interaction.channel_id, Usage.Source.SLASH),
                    gate=self.bot.limits,
                    deliver=deliver,
                )
        except (
            asyncio.CancelledError
        ):  # shutting down: resolve the "thinking..." message (answer() keeps the row)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    interaction.followup.send(INTERRUPTED_NOTICE, allowed_mentions=NO_MENTIONS), timeout=3
                )
            raise
        if outcome.notice:
            # An interaction must be answered, so a refusal's notice is sent even when it was seen before.
            await interaction.followup.send(outcome.notice, allowed_mentions=NO_MENTIONS)

    async def _refuse_recorded(
        self, interaction: discord.Interaction, text: str, outcome: str, guild_pk: int | None = None
    ) -> None:
        """An ephemeral refusal, recorded like any other question (no call, no cost)."""
        usage_record_later(
            guild_pk=guild_pk,
            guild_discord_id=interaction.guild_id,
            channel_id=interaction.channel_id,
            user_id=interaction.user.id,
            model="",
            source=Usage.Source.SLASH,
            outcome=outcome,
        )
        await _refuse(interaction, text)

    @parley.command(name="settings")
    async def show_settings(self, interaction: discord.Interaction) -> None:
        """Show Parley's settings for this server."""
        if interaction.guild_id is None:
            await _refuse(interaction, "Use this command in a server.")
            return
        snapshot = await self._snapshot(interaction)
        if snapshot is None:
            await _refuse(interaction, "This server is not set up yet.")
            return
        channel_id = channel_key(interaction.channel) if interaction.channel else 0
        effective = snapshot.effective(channel_id)
        allowed = snapshot.row.allowed_channel_ids
        channels = ", ".join(f"<#{cid}>" for cid in sorted(allowed)) or "every channel"
        prompt = effective.system_prompt
        prompt = prompt if len(prompt) <= 300 else prompt[:297] + "..."
        embed = discord.Embed(title="Parley settings", url=_dashboard_url(interaction.guild_id))
        embed.add_field(name="Enabled", value="yes" if snapshot.enabled else "no")
        embed.add_field(name="Model", value=effective.model)
        embed.add_field(name="Answers on mention", value="yes" if snapshot.reply_on_mention else "no")
        embed.add_field(name="Channels", value=channels, inline=False)
        embed.add_field(name="System prompt", value=prompt or "(none)", inline=False)
        embed.set_footer(text="Change these in the dashboard")
        await interaction.response.send_message(embed=embed, ephemeral=True, allowed_mentions=NO_MENTIONS)

    @parley.command(name="model")
    @app_commands.describe(model="A model id, e.g. openai/gpt-4o-mini")
    async def set_model(self, interaction: discord.Interaction, model: str) -> None:
        """Switch this server's model (admins only)."""
        if interaction.guild_id is None:
            await _refuse(interaction, "Use this command in a server.")
            return
        try:
            await sync_to_async(services.settings_model_set_from_discord)(
                guild_id=interaction.guild_id, discord_user_id=interaction.user.id, model=model
            )
        except PermissionDenied as exc:
            await _refuse(interaction, str(exc))
            return
        except ValidationError as exc:
            await _refuse(interaction, " ".join(exc.messages))
            return
        self.bot.settings.forget(interaction.guild_id)
        await interaction.response.send_message(
            f"This server now uses **{model}**.", allowed_mentions=NO_MENTIONS
        )

    @set_model.autocomplete("model")
    async def model_choices(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        options = [m for m in registry.all_models() if registry.provider_available(m.provider)]
        return [
            app_commands.Choice(name=f"{m.label} ({m.id})"[:100], value=m.id)
            for m in options
            if current.lower() in m.id.lower()
        ][:25]


async def setup(bot: ParleyBot) -> None:
    await bot.add_cog(SlashCommands(bot))
