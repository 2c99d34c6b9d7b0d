"""The chat cog: answers target users, mentions and replies to the bot with the guild's model."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import discord
from asgiref.sync import sync_to_async
from discord.ext import commands, tasks
from django.conf import settings
from django.db import DatabaseError

from botcore.bot import ParleyBot
from botcore.cogs.guild_sync import snapshot as guild_state
from botcore.conversation import channel_key, conversation, reply_chain
from botcore.replying import (
    DATABASE_DOWN,
    INTERRUPTED_NOTICE,
    REPLY_MENTIONS,
    StreamedReply,
    persist,
    send_reply,
    typing_indicator,
)
from botcore.sync import guilds_upsert
from guilds.effective import Effective, SettingsSnapshot
from llm import registry
from llm.answering import Asker, DeliveryFailed, answer
from llm.limits import reservations_settle_stale
from llm.models import Usage
from llm.prompting import Turn
from llm.usage import usage_record_later

logger = logging.getLogger(__name__)


def trigger_for(
    snapshot: SettingsSnapshot,
    *,
    author_id: int,
    channel_id: int,
    mentioned: bool,
    reply_to_bot: bool,
    is_dm: bool,
) -> str | None:
    """Why the bot should answer this message, or None. Pure, so every rule is easy to test."""
    if is_dm:
        return "target" if snapshot.answers_dm_from(author_id) else None
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
        self._upserting: dict[int, asyncio.Lock] = {}

    async def cog_load(self) -> None:
        self.settle_reservations.start()

    async def cog_unload(self) -> None:
        self.settle_reservations.cancel()

    @tasks.loop(minutes=10)
    async def settle_reservations(self) -> None:
        """Reservations of a bot process that was killed would hold budget and rate limits for the rest of the day."""
        try:
            if settled := await sync_to_async(reservations_settle_stale)():
                logger.warning("%d reservations left by a process that died marked interrupted", settled)
        except DatabaseError as exc:
            logger.warning("stale reservations not settled: %s", type(exc).__name__)

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
        resolved = message.reference.resolved if message.reference else None
        mentioned = self.bot.user in message.mentions
        reply_to_bot = isinstance(resolved, discord.Message) and resolved.author.id == self.bot.user.id
        try:
            snapshot = await self._snapshot(message)
        except DatabaseError:
            # Without settings we cannot tell whether to answer; someone who spoke to the bot hears why not.
            if (
                mentioned
                or reply_to_bot
                or message.guild is None
                or message.author.id in settings.TARGET_USER_IDS
            ):
                await self._tell(message, DATABASE_DOWN, Usage.Outcome.UNCHECKED)
            return
        if snapshot is None:
            return
        channel_id = channel_key(message.channel)
        trigger = trigger_for(
            snapshot,
            author_id=message.author.id,
            channel_id=channel_id,
            mentioned=mentioned,
            reply_to_bot=reply_to_bot,
            is_dm=message.guild is None,
        )
        if trigger is None:
            return
        self._log_incoming(message, trigger)
        if not self.bot.accepting:  # shutting down: say so rather than leave the question unanswered
            await self._tell(message, INTERRUPTED_NOTICE, Usage.Outcome.INTERRUPTED, snapshot.guild_pk)
            return
        with self.bot.answering():
            await self._answer(message, snapshot.effective(channel_id))

    async def _snapshot(self, message: discord.Message) -> SettingsSnapshot | None:
        """The settings that apply; a guild the database does not know yet (joined seconds ago, or a first
        start still syncing) is written from the gateway's data first, so its messages are answered."""
        guild = message.guild
        if guild is None:
            return SettingsSnapshot.for_dm()
        found = await self.bot.settings.get(guild.id)
        if found is not None or guild.unavailable:
            return found
        async with self._upserting.setdefault(guild.id, asyncio.Lock()):
            found = await self.bot.settings.get(guild.id)
            if found is None:
                logger.info("guild %s is not in the database yet: adding it from the gateway", guild.id)
                await sync_to_async(guilds_upsert)([guild_state(guild)])
                found = await self.bot.settings.get(guild.id)
        return found

    async def _tell(
        self, message: discord.Message, notice: str, outcome: str, guild_pk: int | None = None
    ) -> None:
        """A question answered by a notice only: recorded like any other, with no call and no cost."""
        usage_record_later(
            guild_pk=guild_pk,
            guild_discord_id=message.guild.id if message.guild else None,
            channel_id=message.channel.id,
            user_id=message.author.id,
            model="",
            source=Usage.Source.DISCORD,
            outcome=outcome,
        )
        try:
            await persist(lambda: message.reply(notice, allowed_mentions=REPLY_MENTIONS), "notice")
        except DeliveryFailed as exc:
            logger.warning("notice for message %s not delivered: %s", message.id, exc)

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

        delivering = False

        async def deliver(deltas: AsyncIterator[str]) -> None:
            nonlocal delivering
            delivering = True
            if effective.streaming:
                await StreamedReply(message).run(deltas)
            else:
                await send_reply(message, "".join([piece async for piece in deltas]))

        # Without streaming the answer arrives in one piece: typing shows until it does.
        typing = contextlib.nullcontext() if effective.streaming else typing_indicator(message.channel)
        try:
            async with typing:
                outcome = await answer(
                    settings=effective,
                    turns=turns,
                    asker=Asker(message.author.id, message.channel.id, Usage.Source.DISCORD),
                    gate=self.bot.limits,
                    deliver=deliver,
                    streaming=effective.streaming,
                )
        except asyncio.CancelledError:
            if not (delivering and effective.streaming):  # a stream marks its own message as interrupted
                with contextlib.suppress(Exception):
                    await message.reply(INTERRUPTED_NOTICE, allowed_mentions=REPLY_MENTIONS)
            raise
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
        if outcome.notice and outcome.notify:
            try:
                await persist(
                    lambda: message.reply(outcome.notice, allowed_mentions=REPLY_MENTIONS), "notice"
                )
            except DeliveryFailed as exc:
                logger.warning("notice for message %s not delivered: %s", message.id, exc)


async def setup(bot: ParleyBot) -> None:
    await bot.add_cog(Chat(bot))
