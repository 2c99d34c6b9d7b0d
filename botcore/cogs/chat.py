"""The chat cog: answers target users, mentions and replies to the bot with the guild's model."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import discord
from discord.ext import commands
from django.conf import settings

from botcore.bot import ParleyBot
from botcore.conversation import channel_key, conversation, reply_chain
from botcore.replying import REPLY_MENTIONS, StreamedReply, send_reply
from guilds.effective import Effective, GuildSnapshot
from llm import registry
from llm.answering import Asker, answer
from llm.models import Usage
from llm.prompting import Turn

logger = logging.getLogger(__name__)


def trigger_for(
    snapshot: GuildSnapshot,
    *,
    author_id: int,
    channel_id: int,
    mentioned: bool,
    reply_to_bot: bool,
    is_dm: bool,
) -> str | None:
    """Why the bot should answer this message, or None. Pure, so every rule is easy to test."""
    if is_dm:
        return "target" if snapshot.is_target(author_id) else None
    if not snapshot.enabled or not snapshot.allows_channel(channel_id):
        return None
    if snapshot.is_target(author_id):
        return "target"
    if reply_to_bot:
        return "reply"
    if mentioned and snapshot.reply_on_mention:
        return "mention"
    return None


class Chat(commands.Cog):
    def __init__(self, bot: ParleyBot) -> None:
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
        snapshot = (
            GuildSnapshot.for_dm() if message.guild is None else await self.bot.settings.get(message.guild.id)
        )
        if snapshot is None:
            return
        channel_id = channel_key(message.channel)
        resolved = message.reference.resolved if message.reference else None
        trigger = trigger_for(
            snapshot,
            author_id=message.author.id,
            channel_id=channel_id,
            mentioned=self.bot.user in message.mentions,
            reply_to_bot=isinstance(resolved, discord.Message) and resolved.author.id == self.bot.user.id,
            is_dm=is_dm,
        )
        if trigger is None:
            return
        self._log_incoming(message, trigger)
        await self._answer(message, snapshot.effective(channel_id))

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

    async def _answer(self, message: discord.Message, effective: Effective) -> None:
        bot_id = self.bot.user.id if self.bot.user else 0
        info = registry.get_model(effective.model)

        async def turns() -> list[Turn]:
            history = await reply_chain(self.bot, message, effective.history_messages)
            return await conversation(bot_id, history, message, vision=bool(info and info.supports_vision))

        async def deliver(deltas: AsyncIterator[str]) -> None:
            if effective.streaming:
                await StreamedReply(message).run(deltas)
            else:
                await send_reply(message, "".join([piece async for piece in deltas]))

        # Without streaming the answer arrives in one piece: typing shows until it does.
        typing = contextlib.nullcontext() if effective.streaming else message.channel.typing()
        async with typing:
            outcome = await answer(
                settings=effective,
                turns=turns,
                asker=Asker(message.author.id, message.channel.id, Usage.Source.DISCORD),
                gate=self.bot.limits,
                deliver=deliver,
                streaming=effective.streaming,
            )
        if outcome.reply is not None:
            reply = outcome.reply
            logger.info(
                "answered message %s with %s in %d ms (%d+%d tokens)",
                message.id,
                reply.model,
                reply.latency_ms,
                reply.input_tokens,
                reply.output_tokens,
            )
            return
        logger.info("message %s %s: %s", message.id, outcome.status, outcome.refusal or outcome.error)
        if outcome.notify:
            await message.reply(outcome.notice, allowed_mentions=REPLY_MENTIONS)


async def setup(bot: ParleyBot) -> None:
    await bot.add_cog(Chat(bot))
