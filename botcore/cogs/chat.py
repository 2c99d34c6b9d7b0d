"""The chat cog: answers target users, mentions and replies to the bot with the guild's model; in a channel set to
answer every message, every message (with a cooldown); in a channel set to a thread per conversation, it opens a
thread from the asking message, answers there and answers every later message in that thread."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import discord
from asgiref.sync import sync_to_async
from discord.ext import commands, tasks
from django.conf import settings
from django.db import DatabaseError

from botcore.bot import ParleyBot
from botcore.cogs.guild_sync import snapshot as guild_state
from botcore.conversation import (
    channel_key,
    conversation,
    owned_thread,
    recent_messages,
    reply_chain,
    role_ids,
    thread_name,
)
from botcore.decisions import (
    Reason,
    decision_fields,
    decision_record_later,
    ignored_because,
    noteworthy,
    outcome_fields,
)
from botcore.key_alerts import tell_owner
from botcore.replying import (
    DATABASE_DOWN,
    INTERRUPTED_NOTICE,
    StreamedReply,
    open_thread,
    send_reply,
    tell,
    typing_indicator,
)
from botcore.sync import guilds_upsert
from guilds.effective import Effective, SettingsSnapshot
from guilds.models import ChannelSettings
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
    in_own_thread: bool = False,
    since_last_answer: float | None = None,
) -> str | None:
    """Why the bot should answer this message, or None. Pure, so every rule is easy to test.

    ``in_own_thread``: the message is in a thread the bot opened; ``since_last_answer``: seconds since the bot last
    answered in this channel (None: not lately), for the cooldown of a channel where it answers every message.
    """
    if is_dm:
        return "target" if snapshot.answers_dm_from(author_id) else None
    if not snapshot.enabled or not snapshot.allows_channel(channel_id) or snapshot.is_blocked(author_id):
        return None
    if snapshot.is_target(author_id):
        return "target"
    if reply_to_bot:
        return "reply"
    if mentioned and snapshot.reply_on_mention:
        return "mention"
    override = snapshot.override(channel_id)
    if override is None:
        return None
    if override.mode == ChannelSettings.Mode.THREADS and in_own_thread:
        return "thread"  # the thread is the conversation
    if override.mode == ChannelSettings.Mode.EVERYONE:
        # A message nobody addressed to the bot waits out the cooldown: a busy channel is not answered line by
        # line. That is a decision, not a failure: nothing is sent and nothing recorded.
        cooling = since_last_answer is not None and since_last_answer < override.cooldown_seconds
        return None if cooling else "everyone"
    return None


class Chat(commands.Cog):
    def __init__(self, bot: ParleyBot) -> None:
        self.bot = bot
        self._upserting: dict[int, asyncio.Lock] = {}
        # When the bot last answered in each channel where it answers every message (monotonic seconds): the
        # cooldown's clock. In memory: a guild's messages all reach the one process that runs its shard.
        self._answered_at: dict[int, float] = {}

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
                self._decided(message, Reason.DATABASE)
            return
        if snapshot is None:
            return
        channel_id = channel_key(message.channel)
        in_own_thread = owned_thread(message.channel, self.bot.user.id)
        answered_at = self._answered_at.get(message.channel.id)
        trigger = trigger_for(
            snapshot,
            author_id=message.author.id,
            channel_id=channel_id,
            mentioned=mentioned,
            reply_to_bot=reply_to_bot,
            is_dm=message.guild is None,
            in_own_thread=in_own_thread,
            since_last_answer=None if answered_at is None else time.monotonic() - answered_at,
        )
        if trigger is None:
            addressed = {"mentioned": mentioned, "reply_to_bot": reply_to_bot}
            if message.guild is not None and noteworthy(
                snapshot, author_id=message.author.id, channel_id=channel_id, **addressed
            ):
                why = ignored_because(
                    snapshot, author_id=message.author.id, channel_id=channel_id, **addressed
                )
                self._decided(message, why)
            return
        self._log_incoming(message, trigger)
        if not self.bot.accepting:  # shutting down: say so rather than leave the question unanswered
            await self._tell(message, INTERRUPTED_NOTICE, Usage.Outcome.INTERRUPTED, snapshot.guild_pk)
            self._decided(message, Reason.RESTARTING, trigger=trigger)
            return
        effective = snapshot.effective(channel_id, roles=role_ids(message.author))
        if effective.mode == ChannelSettings.Mode.EVERYONE:
            self._answered_at[message.channel.id] = time.monotonic()  # taken now: a burst gets one answer
        with self.bot.answering():
            await self._answer(message, effective, trigger=trigger, in_own_thread=in_own_thread)

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
            await tell(message, None, notice)
        except DeliveryFailed as exc:
            logger.warning("notice for message %s not delivered: %s", message.id, exc)

    def _decided(self, message: discord.Message, reason: str, **more: Any) -> None:
        """The answer inspector's row for a guild message (``botcore/decisions.py``): queued, never awaited."""
        if message.guild is not None:
            decision_record_later(decision_fields(message, reason=reason, **more))

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

    async def _answer(
        self, message: discord.Message, effective: Effective, *, trigger: str, in_own_thread: bool
    ) -> None:
        bot_id = self.bot.user.id if self.bot.user else 0
        info = registry.get_model(effective.model)
        # Where everyone is answered, and in a thread, the conversation is the channel's latest messages;
        # elsewhere it is the chain of replies that led here.
        whole_channel = effective.mode == ChannelSettings.Mode.EVERYONE or in_own_thread
        opens_thread = (
            effective.mode == ChannelSettings.Mode.THREADS
            and message.guild is not None
            and not isinstance(message.channel, discord.Thread)
        )
        thread: discord.Thread | None = None

        async def turns() -> list[Turn]:
            if whole_channel:
                history = await recent_messages(message, effective.history_messages)
            else:
                history = await reply_chain(self.bot, message, effective.history_messages)
            return await conversation(bot_id, history, message, vision=bool(info and info.supports_vision))

        delivering = False

        async def deliver(deltas: AsyncIterator[str]) -> None:
            nonlocal delivering, thread
            delivering = True
            if (
                opens_thread
            ):  # opened once the answer starts: a refused question leaves no empty thread behind
                thread = await open_thread(message, thread_name(message, bot_id))
            if effective.streaming:
                await StreamedReply(message, where=thread).run(deltas)
            else:
                await send_reply(message, "".join([piece async for piece in deltas]), where=thread)

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
            self._decided(message, Reason.FAILED, trigger=trigger, usage_outcome=Usage.Outcome.INTERRUPTED)
            if not (delivering and effective.streaming):  # a stream marks its own message as interrupted
                with contextlib.suppress(Exception):
                    await tell(message, thread, INTERRUPTED_NOTICE)
            raise
        self._decided(message, trigger=trigger, **outcome_fields(outcome))
        if outcome.keys_reported:  # a provider refused the server's own key: its owner hears it once
            await tell_owner(self.bot, message.guild, message.channel, outcome.keys_reported)
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
                await tell(message, thread, outcome.notice)
            except DeliveryFailed as exc:
                logger.warning("notice for message %s not delivered: %s", message.id, exc)


async def setup(bot: ParleyBot) -> None:
    await bot.add_cog(Chat(bot))
