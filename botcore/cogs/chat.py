"""The chat cog: answers target users, mentions and replies to the bot with the guild's model."""

from __future__ import annotations

import logging
import time

import discord
from discord.ext import commands
from django.conf import settings

from botcore.conversation import build_messages, channel_key, reply_chain
from botcore.guild_config import GuildConfig, dm_config
from botcore.text import split_message
from llm.client import LLMRequest, generate
from llm.errors import LLMError

logger = logging.getLogger(__name__)

# Replies may ping the person they answer, nobody else: LLM text can hold @everyone or role mentions.
REPLY_MENTIONS = discord.AllowedMentions(everyone=False, users=False, roles=False, replied_user=True)
NO_MENTIONS = discord.AllowedMentions.none()

FRIENDLY_ERRORS = {
    "timeout": "Sorry, the model took too long to answer. Please try again.",
    "rate_limited": "The model provider is busy right now. Please try again in a moment.",
    "unavailable": "This server's model is not configured. An admin can pick another one in the dashboard.",
    "bad_request": "Sorry, the model could not answer that message.",
}
GENERIC_ERROR = "Sorry, something went wrong while answering. Please try again."


def trigger_for(
    config: GuildConfig, *, author_id: int, channel_id: int, mentioned: bool, reply_to_bot: bool, is_dm: bool
) -> str | None:
    """Why the bot should answer this message, or None. Pure, so every rule is easy to test."""
    if is_dm:
        return "target" if config.is_target(author_id) else None
    if not config.enabled or not config.allows_channel(channel_id):
        return None
    if config.is_target(author_id):
        return "target"
    if reply_to_bot:
        return "reply"
    if mentioned and config.reply_on_mention:
        return "mention"
    return None


class Chat(commands.Cog):
    def __init__(self, bot: commands.AutoShardedBot) -> None:
        self.bot = bot

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or self.bot.user is None:
            return
        try:
            await self._handle(message)
        except Exception:
            # One bad message must never take the bot down.
            logger.exception("failed to handle message %s", message.id)

    async def _handle(self, message: discord.Message) -> None:
        assert self.bot.user is not None
        is_dm = message.guild is None
        config = dm_config() if is_dm else await self.bot.guild_configs.get(message.guild.id)  # type: ignore[attr-defined, union-attr]
        if config is None:
            return
        channel_id = channel_key(message.channel)
        reference = message.reference
        reply_to_bot = bool(
            reference
            and isinstance(reference.resolved, discord.Message)
            and reference.resolved.author.id == self.bot.user.id
        )
        trigger = trigger_for(
            config,
            author_id=message.author.id,
            channel_id=channel_id,
            mentioned=self.bot.user in message.mentions,
            reply_to_bot=reply_to_bot,
            is_dm=is_dm,
        )
        if trigger is None:
            return
        self._log_incoming(message, trigger)
        await self._answer(message, config, channel_id)

    def _log_incoming(self, message: discord.Message, trigger: str) -> None:
        extra = {"content": message.content} if settings.LOG_MESSAGE_CONTENT else {}
        logger.info(
            "answering message %s from %s in channel %s (%s, %d chars)",
            message.id,
            message.author.id,
            message.channel.id,
            trigger,
            len(message.content),
            extra=extra,
        )

    async def _answer(self, message: discord.Message, config: GuildConfig, channel_id: int) -> None:
        assert self.bot.user is not None
        history = await reply_chain(self.bot, message, config.history_messages)
        request = LLMRequest(
            model=config.model_for(channel_id) or settings.LLM_DEFAULT_MODEL,
            messages=build_messages(
                system_prompt=config.prompt_for(channel_id),
                history=history,
                message=message,
                bot_id=self.bot.user.id,
            ),
            temperature=config.temperature,
            max_tokens=config.max_output_tokens,
            fallback_model=config.fallback_model or None,
            guild_id=config.guild_id,
            channel_id=message.channel.id,
            user_id=message.author.id,
        )
        started = time.monotonic()
        try:
            async with message.channel.typing():
                reply = await generate(request)
        except LLMError as exc:
            logger.warning("LLM call failed for message %s: %s (%s)", message.id, exc.kind, exc.model)
            await message.reply(FRIENDLY_ERRORS.get(exc.kind, GENERIC_ERROR), allowed_mentions=REPLY_MENTIONS)
            return
        await self.send_reply(message, reply.text)
        logger.info(
            "answered message %s with %s in %d ms (%d+%d tokens)",
            message.id,
            reply.model,
            int((time.monotonic() - started) * 1000),
            reply.input_tokens,
            reply.output_tokens,
        )

    async def send_reply(self, message: discord.Message, text: str) -> list[discord.Message]:
        chunks = split_message(text) or ["(the model returned an empty answer)"]
        sent = [await message.reply(chunks[0], allowed_mentions=REPLY_MENTIONS)]
        for chunk in chunks[1:]:
            sent.append(await message.channel.send(chunk, allowed_mentions=NO_MENTIONS))
        return sent


async def setup(bot: commands.AutoShardedBot) -> None:
    await bot.add_cog(Chat(bot))
