"""The chat cog: answers target users, mentions and replies to the bot with the guild's model."""

from __future__ import annotations

import logging

import discord
from discord.ext import commands
from django.conf import settings

from botcore.bot import ParleyBot
from botcore.conversation import build_messages, channel_key, reply_chain
from botcore.guild_config import GuildConfig, dm_config
from botcore.replying import REPLY_MENTIONS, StreamedReply, send_reply
from llm import registry
from llm.client import LLMRequest, Reply, generate, stream
from llm.errors import LLMError
from llm.models import Usage
from llm.usage import Limits, usage_record_later

logger = logging.getLogger(__name__)

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
    def __init__(self, bot: ParleyBot) -> None:
        self.bot = bot
        self.limits = bot.limits

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
        config = dm_config() if message.guild is None else await self.bot.guild_configs.get(message.guild.id)
        if config is None:
            return
        channel_id = channel_key(message.channel)
        resolved = message.reference.resolved if message.reference else None
        trigger = trigger_for(
            config,
            author_id=message.author.id,
            channel_id=channel_id,
            mentioned=self.bot.user in message.mentions,
            reply_to_bot=isinstance(resolved, discord.Message) and resolved.author.id == self.bot.user.id,
            is_dm=is_dm,
        )
        if trigger is None:
            return
        self._log_incoming(message, trigger)
        if config.guild_pk is not None and not await self._within_limits(message, config, channel_id):
            return
        await self._answer(message, config, channel_id)

    def _log_incoming(self, message: discord.Message, trigger: str) -> None:
        extra = {"content": message.content} if settings.LOG_MESSAGE_CONTENT else {}
        logger.debug(
            "answering message %s from %s in channel %s (%s, %d chars)",
            message.id,
            message.author.id,
            message.channel.id,
            trigger,
            len(message.content),
            extra=extra,
        )

    async def _within_limits(self, message: discord.Message, config: GuildConfig, channel_id: int) -> bool:
        assert config.guild_pk is not None
        limits = Limits(
            config.daily_budget_usd, config.user_messages_per_minute, config.user_messages_per_day
        )
        refusal = await self.limits.check(config.guild_pk, message.author.id, limits)
        if refusal is None:
            return True
        usage_record_later(
            guild_pk=config.guild_pk,
            channel_id=message.channel.id,
            user_id=message.author.id,
            model=config.model_for(channel_id),
            source=Usage.Source.DISCORD,
            outcome=refusal.outcome,
        )
        if self.limits.should_notify(refusal):
            await message.reply(refusal.notice, allowed_mentions=REPLY_MENTIONS)
        logger.info("message %s refused: %s", message.id, refusal.outcome)
        return False

    async def _answer(self, message: discord.Message, config: GuildConfig, channel_id: int) -> None:
        assert self.bot.user is not None
        model = config.model_for(channel_id) or registry.default_model_id()
        info = registry.get_model(model)
        history = await reply_chain(self.bot, message, config.history_messages)
        request = LLMRequest(
            model=model,
            messages=await build_messages(
                system_prompt=config.prompt_for(channel_id),
                history=history,
                message=message,
                bot_id=self.bot.user.id,
                vision=bool(info and info.supports_vision),
            ),
            temperature=config.temperature,
            max_tokens=config.max_output_tokens,
            fallback_model=config.fallback_model or None,
            guild_id=config.guild_id,
            channel_id=message.channel.id,
            user_id=message.author.id,
        )
        usage = {
            "guild_pk": config.guild_pk,
            "channel_id": message.channel.id,
            "user_id": message.author.id,
            "model": model,
            "source": Usage.Source.DISCORD,
        }
        try:
            reply = await (
                self._stream(message, request) if config.streaming else self._generate(message, request)
            )
        except LLMError as exc:
            logger.warning("LLM call failed for message %s: %s (%s)", message.id, exc.kind, exc.model)
            usage_record_later(**usage, error=exc)
            await message.reply(FRIENDLY_ERRORS.get(exc.kind, GENERIC_ERROR), allowed_mentions=REPLY_MENTIONS)
            return
        usage_record_later(**usage, reply=reply)
        logger.info(
            "answered message %s with %s in %d ms (%d+%d tokens)",
            message.id,
            reply.model,
            reply.latency_ms,
            reply.input_tokens,
            reply.output_tokens,
        )

    async def _generate(self, message: discord.Message, request: LLMRequest) -> Reply:
        async with message.channel.typing():
            reply = await generate(request)
        await send_reply(message, reply.text)
        return reply

    async def _stream(self, message: discord.Message, request: LLMRequest) -> Reply:
        async with stream(request) as deltas:
            await StreamedReply(message).run(deltas)
            return deltas.reply


async def setup(bot: ParleyBot) -> None:
    await bot.add_cog(Chat(bot))
