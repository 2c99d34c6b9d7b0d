"""Slash commands: /ask, /parley settings, /parley model."""

from __future__ import annotations

import logging

import discord
from asgiref.sync import sync_to_async
from discord import app_commands
from discord.ext import commands
from django.conf import settings
from django.core.exceptions import ValidationError

from botcore.bot import ParleyBot
from botcore.commands_sync import dashboard_url, model_set
from botcore.conversation import channel_key
from botcore.guild_config import GuildConfig, dm_config
from botcore.replying import NO_MENTIONS
from botcore.text import split_message
from llm import registry
from llm.client import LLMRequest, generate
from llm.errors import LLMError
from llm.models import Usage
from llm.usage import Limits, usage_record_later

logger = logging.getLogger(__name__)


async def _refuse(interaction: discord.Interaction, text: str) -> None:
    await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)


class SlashCommands(commands.Cog):
    parley = app_commands.Group(name="parley", description="Parley's settings for this server")

    def __init__(self, bot: ParleyBot) -> None:
        self.bot = bot

    async def _config(self, interaction: discord.Interaction) -> GuildConfig | None:
        if interaction.guild_id is None:
            return dm_config()
        return await self.bot.guild_configs.get(interaction.guild_id)

    @app_commands.command(name="ask")
    @app_commands.describe(prompt="What to ask the model")
    async def ask(self, interaction: discord.Interaction, prompt: app_commands.Range[str, 1, 2000]) -> None:
        """Ask Parley a question with this server's prompt and model."""
        config = await self._config(interaction)
        channel_id = channel_key(interaction.channel) if interaction.channel else 0
        if config is None or (
            interaction.guild_id is not None and not (config.enabled and config.allows_channel(channel_id))
        ):
            await _refuse(interaction, "Parley is not enabled in this channel.")
            return
        # Discord wants an answer within 3 s; the model may take longer.
        await interaction.response.defer(thinking=True)
        user_id = interaction.user.id
        model = config.model_for(channel_id) or registry.default_model_id()
        usage = {
            "guild_pk": config.guild_pk,
            "channel_id": interaction.channel_id,
            "user_id": user_id,
            "model": model,
            "source": Usage.Source.SLASH,
        }
        if config.guild_pk is not None:
            limits = Limits(
                config.daily_budget_usd, config.user_messages_per_minute, config.user_messages_per_day
            )
            refusal = await self.bot.limits.check(config.guild_pk, user_id, limits)
            if refusal is not None:
                # Counted like a refused chat message, so the usage page shows it.
                usage_record_later(**usage, outcome=refusal.outcome)
                await interaction.followup.send(refusal.notice, allowed_mentions=NO_MENTIONS)
                return
        messages = [{"role": "user", "content": f"{interaction.user.display_name}: {prompt}"}]
        system_prompt = config.prompt_for(channel_id)
        if system_prompt:
            messages.insert(0, {"role": "system", "content": system_prompt})
        request = LLMRequest(
            model=model,
            messages=messages,
            temperature=config.temperature,
            max_tokens=config.max_output_tokens,
            fallback_model=config.fallback_model or None,
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id,
            user_id=user_id,
        )
        try:
            reply = await generate(request)
        except LLMError as exc:
            usage_record_later(**usage, error=exc)
            await interaction.followup.send(
                "Sorry, the model could not answer right now. Please try again.", allowed_mentions=NO_MENTIONS
            )
            return
        usage_record_later(**usage, reply=reply)
        for chunk in split_message(reply.text) or ["(the model returned an empty answer)"]:
            await interaction.followup.send(chunk, allowed_mentions=NO_MENTIONS)

    @parley.command(name="settings")
    async def show_settings(self, interaction: discord.Interaction) -> None:
        """Show Parley's settings for this server."""
        if interaction.guild_id is None:
            await _refuse(interaction, "Use this command in a server.")
            return
        config = await self._config(interaction)
        if config is None:
            await _refuse(interaction, "This server is not set up yet.")
            return
        channels = ", ".join(f"<#{cid}>" for cid in sorted(config.allowed_channel_ids)) or "every channel"
        prompt = (
            config.system_prompt if len(config.system_prompt) <= 300 else config.system_prompt[:297] + "..."
        )
        embed = discord.Embed(title="Parley settings", url=dashboard_url(interaction.guild_id))
        embed.add_field(name="Enabled", value="yes" if config.enabled else "no")
        embed.add_field(name="Model", value=config.model or registry.default_model_id())
        embed.add_field(name="Answers on mention", value="yes" if config.reply_on_mention else "no")
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
            await sync_to_async(model_set)(
                guild_id=interaction.guild_id, user_id=interaction.user.id, model=model
            )
        except PermissionError as exc:
            await _refuse(interaction, str(exc))
            return
        except ValidationError as exc:
            await _refuse(interaction, " ".join(exc.messages))
            return
        self.bot.guild_configs.forget(interaction.guild_id)
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


async def sync_commands(bot: ParleyBot) -> None:
    """Per guild in development (instant), globally in production. Only the process running shard 0 syncs."""
    if 0 not in bot.own_shard_ids or not settings.BOT_SYNC_COMMANDS:
        return
    if settings.DISCORD_DEV_GUILD_ID:
        guild = discord.Object(id=settings.DISCORD_DEV_GUILD_ID)
        bot.tree.copy_global_to(guild=guild)
        synced = await bot.tree.sync(guild=guild)
    else:
        synced = await bot.tree.sync()
    logger.info(
        "synced %d slash commands (%s)",
        len(synced),
        "dev guild" if settings.DISCORD_DEV_GUILD_ID else "global",
    )


async def setup(bot: ParleyBot) -> None:
    await bot.add_cog(SlashCommands(bot))
