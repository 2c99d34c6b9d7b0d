"""Sending an answer to Discord: in one go, or streamed by editing messages as the text arrives.

Streaming sends the first message when the first text arrives and edits it as more comes, at most one edit per
``EDIT_INTERVAL`` seconds per message, and slower when Discord's rate-limit bucket for edits runs low. Text past
2,000 characters continues in a new message; the final edit always holds the complete text.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import discord
from discord.http import Route

from botcore.text import split_message

logger = logging.getLogger(__name__)

EDIT_INTERVAL = 1.2
FIRST_MESSAGE_GRACE = 0.3
EMPTY_ANSWER = "(the model returned an empty answer)"
# Replies may ping the person they answer, nobody else: LLM text can hold @everyone or role mentions.
REPLY_MENTIONS = discord.AllowedMentions(everyone=False, users=False, roles=False, replied_user=True)
NO_MENTIONS = discord.AllowedMentions.none()


async def send_reply(message: discord.Message, text: str) -> list[discord.Message]:
    chunks = split_message(text) or [EMPTY_ANSWER]
    sent = [await message.reply(chunks[0], allowed_mentions=REPLY_MENTIONS)]
    for chunk in chunks[1:]:
        sent.append(await message.channel.send(chunk, allowed_mentions=NO_MENTIONS))
    return sent


class StreamedReply:
    """Mirrors a growing text into Discord messages, paced per message."""

    def __init__(self, message: discord.Message, interval: float = EDIT_INTERVAL) -> None:
        self.message = message
        self.interval = interval
        self.sent: list[discord.Message] = []
        self.shown: list[str] = []
        self.next_edit: list[float] = []  # monotonic time each message may next be edited
        self.edits = 0

    async def run(self, deltas: AsyncIterator[str]) -> str:
        """Read ``deltas`` to the end, mirroring the text into Discord; returns the whole text.

        A reader task collects the text while this loop sends and edits, so pacing never slows the provider's
        stream, and an answer that arrives all at once (the offline model, a fast provider) goes out as one
        message with no edits.
        """
        text = ""
        changed = asyncio.Event()

        async def read() -> None:
            nonlocal text
            try:
                async for delta in deltas:
                    text += delta
                    changed.set()
            finally:
                changed.set()

        reader = asyncio.create_task(read())
        try:
            async with self.message.channel.typing():
                await changed.wait()
                # A moment's grace: an answer that is already complete goes out whole, and a streamed one starts
                # with more than a word.
                await asyncio.wait({reader}, timeout=FIRST_MESSAGE_GRACE)
            while not reader.done():
                changed.clear()
                await self._sync(text, final=False)
                await changed.wait()
            reader.result()  # an error mid-stream reaches the caller
            await self._sync(text, final=True)
        finally:
            reader.cancel()
        return text

    async def _sync(self, text: str, *, final: bool) -> None:
        chunks = split_message(text)
        if not chunks:
            if final and not self.sent:
                await self._send(EMPTY_ANSWER)
            return
        for index, chunk in enumerate(chunks):
            if index >= len(self.sent):
                await self._send(chunk)
            elif chunk != self.shown[index]:
                # A message followed by another one is complete: give it its final text now.
                settled = final or index < len(chunks) - 1
                await self._edit(index, chunk, wait=settled)

    async def _send(self, content: str) -> None:
        if not self.sent:
            sent = await self.message.reply(content, allowed_mentions=REPLY_MENTIONS)
        else:
            sent = await self.message.channel.send(content, allowed_mentions=NO_MENTIONS)
        self.sent.append(sent)
        self.shown.append(content)
        self.next_edit.append(time.monotonic() + self.interval)

    async def _edit(self, index: int, content: str, *, wait: bool) -> None:
        delay = self.next_edit[index] - time.monotonic()
        if delay > 0:
            if not wait:
                return  # too soon: a later delta (or the final sync) will carry this text
            await asyncio.sleep(delay)
        started = time.monotonic()
        await self.sent[index].edit(content=content, allowed_mentions=NO_MENTIONS)
        self.edits += 1
        self.shown[index] = content
        took = time.monotonic() - started
        self.next_edit[index] = time.monotonic() + self._pace(self.sent[index], took)

    def _pace(self, sent: discord.Message, took: float) -> float:
        """The wait before this message's next edit: our interval, stretched when Discord's bucket runs low or
        when discord.py had to wait out a rate limit (the edit call itself took long)."""
        pace = self.interval
        bucket = _edit_bucket(sent)
        if bucket is not None and bucket.remaining <= 1 and bucket.reset_after:
            pace = max(pace, bucket.reset_after)
        if took > self.interval:
            pace = max(pace, 2 * took)
        return pace


def _edit_bucket(sent: discord.Message) -> Any:
    """discord.py's rate-limit bucket for editing messages in this channel, built from Discord's headers."""
    http = sent._state.http
    route = Route(
        "PATCH",
        "/channels/{channel_id}/messages/{message_id}",
        channel_id=sent.channel.id,
        message_id=sent.id,
    )
    try:
        bucket_hash = http._bucket_hashes.get(route.key)
        key = f"{bucket_hash or route.key}:{route.major_parameters}"
        return http._buckets.get(key)
    except AttributeError:  # private API: degrade to the fixed interval if it ever changes
        return None
