"""Slash commands: /ask, /summarize, /parley settings, /parley model."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from dataclasses import replace

import discord
from asgiref.sync import sync_to_async
from discord import app_commands
from discord.ext import commands
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError

from botcore.bot import ParleyBot
from botcore.conversation import channel_key, role_ids, transcript
from botcore.key_alerts import tell_owner
from botcore.replying import DATABASE_DOWN, EMPTY_ANSWER, INTERRUPTED_NOTICE, NO_MENTIONS, persist
from botcore.text import split_message
from guilds import services
from guilds.effective import SettingsSnapshot
from guilds.models import ChannelSettings
from llm import registry
from llm.answering import AnswerSettings, Asker, answer
from llm.models import Usage
from llm.prompting import Turn
from llm.usage import usage_record_later

logger = logging.getLogger(__name__)


def _dashboard_url(guild_id: int) -> str:
    return f"{settings.SITE_URL}/dashboard/guilds/{guild_id}/settings/"


async def _refuse(interaction: discord.Interaction, text: str) -> None:
    await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)


NOT_ENABLED = "Parley is not enabled in this channel."
NO_DMS = "Parley does not answer direct messages."
DM_TARGETS_ONLY = "Parley answers direct messages only for the people its operator chose."
BLOCKED = "Parley does not answer you in this server."
CANNOT_READ = "I can't read this channel's messages: Parley needs the Read Message History permission here."
# The bot reads with its own permissions: a member who may not read the history gets no summary of it either.
NOT_YOURS_TO_READ = "You can't read this channel's earlier messages, so I won't summarize them for you."
SUMMARY_PROMPT = (
    "You summarize a Discord conversation for someone who missed it. Say what was discussed, what was decided or "
    "asked and still open, and who said what when it matters, in a few short paragraphs or bullet points. Answer "
    "with the summary only, in the language of the conversation."
)


async def _latest(channel: object, limit: int) -> list[discord.Message] | None:
    """The channel's latest ``limit`` messages, read with the bot's own permissions; None when it may not read
    them (or the channel has no messages of its own, like a forum)."""
    if not isinstance(channel, discord.abc.Messageable):
        return None
    try:
        return [message async for message in channel.history(limit=limit)]
    except discord.HTTPException as exc:
        logger.info("/summarize cannot read channel %s (%s)", getattr(channel, "id", "?"), exc.status)
        return None


def refusal_for(
    snapshot: SettingsSnapshot | None, *, guild_id: int | None, user_id: int, channel_id: int
) -> str | None:
    """Why Parley does not take a command here, or None. Interactions must be answered, so unlike a message from a
    blocked user, which gets nothing, a blocked user's command gets an ephemeral refusal that only they see."""
    if guild_id is None and not settings.DM_ENABLED:
        return NO_DMS
    if snapshot is None or not (snapshot.enabled and snapshot.allows_channel(channel_id)):
        return NOT_ENABLED
    if guild_id is None and not snapshot.answers_dm_from(user_id):
        return DM_TARGETS_ONLY
    if snapshot.is_blocked(user_id):
        return BLOCKED
    return None


class SlashCommands(commands.Cog):
    parley = app_commands.Group(name="parley", description="Parley's settings for this server")

    def __init__(self, bot: ParleyBot) -> None:
        self.bot = bot

    async def _snapshot(self, interaction: discord.Interaction) -> SettingsSnapshot | None:
        if interaction.guild_id is None:
            return SettingsSnapshot.for_dm()
        return await self.bot.settings.get(interaction.guild_id)

    async def _ready(self, interaction: discord.Interaction, source: str) -> SettingsSnapshot | None:
        """The settings for a command that asks the model, or None once the command was refused (recorded)."""
        channel_id = channel_key(interaction.channel) if interaction.channel else 0
        try:
            # Discord wants a first answer within 3 s: the settings get 2 of them (they are usually cached).
            snapshot = await asyncio.wait_for(self._snapshot(interaction), timeout=2.0)
        except (DatabaseError, TimeoutError):
            await self._refuse_recorded(interaction, DATABASE_DOWN, Usage.Outcome.UNCHECKED, source=source)
            return None
        refusal = refusal_for(
            snapshot, guild_id=interaction.guild_id, user_id=interaction.user.id, channel_id=channel_id
        )
        if refusal is not None:
            guild_pk = snapshot.guild_pk if snapshot is not None else None
            await self._refuse_recorded(interaction, refusal, Usage.Outcome.DISABLED, guild_pk, source=source)
            return None
        assert snapshot is not None
        if not self.bot.accepting:
            await self._refuse_recorded(
                interaction, INTERRUPTED_NOTICE, Usage.Outcome.INTERRUPTED, snapshot.guild_pk, source=source
            )
            return None
        return snapshot

    @app_commands.command(name="ask")
    @app_commands.describe(prompt="What to ask the model")
    async def ask(self, interaction: discord.Interaction, prompt: app_commands.Range[str, 1, 2000]) -> None:
        """Ask Parley a question with this server's prompt and model."""
        snapshot = await self._ready(interaction, Usage.Source.SLASH)
        if snapshot is None:
            return
        channel_id = channel_key(interaction.channel) if interaction.channel else 0
        # Discord wants an answer within 3 s; the model may take longer.
        await interaction.response.defer(thinking=True)
        await self._answer(
            interaction,
            effective=snapshot.effective(channel_id, roles=role_ids(interaction.user)),
            turns=[Turn(role="user", text=prompt, speaker=interaction.user.display_name)],
            source=Usage.Source.SLASH,
        )

    @app_commands.command(name="summarize")
    @app_commands.describe(messages="How many of the latest messages to read (1 to 100; 50 when left out)")
    async def summarize(
        self, interaction: discord.Interaction, messages: app_commands.Range[int, 1, 100] = 50
    ) -> None:
        """Summarize this channel's latest messages; only you see the summary."""
        snapshot = await self._ready(interaction, Usage.Source.SUMMARY)
        if snapshot is None:
            return
        channel = interaction.channel
        channel_id = channel_key(channel) if channel else 0
        if interaction.guild is not None and not interaction.permissions.read_message_history:
            self._record(interaction, Usage.Outcome.DISABLED, snapshot.guild_pk, Usage.Source.SUMMARY)
            await interaction.response.send_message(NOT_YOURS_TO_READ, ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        history = await _latest(channel, messages)
        if history is None:
            self._record(interaction, Usage.Outcome.DISABLED, snapshot.guild_pk, Usage.Source.SUMMARY)
            await self._followup(interaction, CANNOT_READ, ephemeral=True)
            return
        bot_id = self.bot.user.id if self.bot.user else 0
        effective = snapshot.effective(channel_id, roles=role_ids(interaction.user))
        await self._answer(
            interaction,
            effective=replace(effective, system_prompt=SUMMARY_PROMPT),
            turns=[Turn(role="user", text=transcript(history, bot_id))],
            source=Usage.Source.SUMMARY,
            ephemeral=True,
        )

    async def _answer(
        self,
        interaction: discord.Interaction,
        *,
        effective: AnswerSettings,
        turns: list[Turn],
        source: str,
        ephemeral: bool = False,
    ) -> None:
        """A deferred command's answer through ``answer()`` (limits, one usage row), sent as follow-ups."""

        async def deliver(deltas: AsyncIterator[str]) -> None:
            text = "".join([piece async for piece in deltas])
            for chunk in split_message(text) or [EMPTY_ANSWER]:
                await self._followup(interaction, chunk, ephemeral=ephemeral)

        try:
            with self.bot.answering():
                outcome = await answer(
                    settings=effective,
                    turns=turns,
                    asker=Asker(interaction.user.id, interaction.channel_id, source),
                    gate=self.bot.limits,
                    deliver=deliver,
                )
        except (
            asyncio.CancelledError
        ):  # shutting down: resolve the "thinking..." message (answer() keeps the row)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    interaction.followup.send(
                        INTERRUPTED_NOTICE, ephemeral=ephemeral, allowed_mentions=NO_MENTIONS
                    ),
                    timeout=3,
                )
            raise
        if outcome.keys_reported:  # a provider refused the server's own key: its owner hears it once
            await tell_owner(self.bot, interaction.guild, interaction.channel, outcome.keys_reported)
        if outcome.notice:
            # An interaction must be answered, so a refusal's notice is sent even when it was seen before.
            await interaction.followup.send(outcome.notice, ephemeral=ephemeral, allowed_mentions=NO_MENTIONS)

    @staticmethod
    async def _followup(interaction: discord.Interaction, text: str, *, ephemeral: bool) -> None:
        send = functools.partial(
            interaction.followup.send, text, ephemeral=ephemeral, allowed_mentions=NO_MENTIONS
        )
        await persist(send, "followup")

    async def _refuse_recorded(
        self,
        interaction: discord.Interaction,
        text: str,
        outcome: str,
        guild_pk: int | None = None,
        *,
        source: str = Usage.Source.SLASH,
    ) -> None:
        """An ephemeral refusal, recorded like any other question (no call, no cost)."""
        self._record(interaction, outcome, guild_pk, source)
        await _refuse(interaction, text)

    @staticmethod
    def _record(interaction: discord.Interaction, outcome: str, guild_pk: int | None, source: str) -> None:
        usage_record_later(
            guild_pk=guild_pk,
            guild_discord_id=interaction.guild_id,
            channel_id=interaction.channel_id,
            user_id=interaction.user.id,
            model="",
            source=source,
            outcome=outcome,
        )

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
        effective = snapshot.effective(channel_id, roles=role_ids(interaction.user))
        allowed = snapshot.row.allowed_channel_ids
        channels = ", ".join(f"<#{cid}>" for cid in sorted(allowed)) or "every channel"
        prompt = effective.system_prompt
        prompt = prompt if len(prompt) <= 300 else prompt[:297] + "..."
        embed = discord.Embed(title="Parley settings", url=_dashboard_url(interaction.guild_id))
        embed.add_field(name="Enabled", value="yes" if snapshot.enabled else "no")
        embed.add_field(name="Model", value=effective.model)
        embed.add_field(name="Answers on mention", value="yes" if snapshot.reply_on_mention else "no")
        mode = ChannelSettings.Mode(effective.mode).label if effective.mode else "mentions and replies"
        embed.add_field(name="Conversation here", value=str(mode))
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
