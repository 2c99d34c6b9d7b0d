"""Sending an answer to Discord: in one go, or streamed by editing messages as the text arrives.

Streaming sends the first message when the first text arrives and edits it as more comes, at most one edit per
``EDIT_INTERVAL`` seconds per message, and slower when Discord's rate-limit bucket for edits runs low. Text past
2,000 characters continues in a new message; the final edit always holds the complete text.

Discord errors that outlast discord.py's own retries (a 429 storm, 5xx, a timeout) are tried again with backoff
up to ``BOT_DISCORD_SEND_ATTEMPTS`` times; then ``DeliveryFailed`` is raised. A shutdown that cancels a stream
gives the message its text so far and a note that it was interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import discord
from discord.http import Route
from django.conf import settings

from botcore.text import split_message
from llm.answering import DeliveryFailed

logger = logging.getLogger(__name__)

EDIT_INTERVAL = 1.2
FIRST_MESSAGE_GRACE = 0.3
EMPTY_ANSWER = "(the model returned an empty answer)"
INTERRUPTED_NOTE = "\n\n*(Interrupted: Parley is restarting. Please ask again in a minute.)*"
DATABASE_DOWN = "I can't reach my database right now, so I can't answer. Please try again in a minute."
INTERRUPT_TIMEOUT = 3.0  # seconds a shutdown gives a stream to show that it was interrupted
INTERRUPTED_NOTICE = "Sorry, Parley is restarting and could not answer this. Please ask again in a minute."
# Replies may ping the person they answer, nobody else: LLM text can hold @everyone or role mentions.
REPLY_MENTIONS = discord.AllowedMentions(everyone=False, users=False, roles=False, replied_user=True)
NO_MENTIONS = discord.AllowedMentions.none()


T = TypeVar("T")


async def persist(action: Callable[[], Awaitable[T]], what: str) -> T:
    """``action()``, tried again with backoff when Discord fails after discord.py's own retries.

    Errors that another try cannot fix (403, 404, 400: missing permissions, a deleted channel or message) are
    not repeated. Raises ``DeliveryFailed`` once the attempts are used up."""
    attempts = settings.BOT_DISCORD_SEND_ATTEMPTS
    for attempt in range(attempts):
        try:
            return await action()
        except discord.HTTPException as exc:
            if exc.status in (400, 401, 403, 404) or attempt + 1 == attempts:
                raise DeliveryFailed(f"{what}: Discord answered {exc.status} ({exc.text[:100]})") from exc
            delay = _retry_after(exc) or settings.BOT_DISCORD_RETRY_SECONDS * 2**attempt
        except (aiohttp.ClientError, TimeoutError) as exc:
            if attempt + 1 == attempts:
                raise DeliveryFailed(f"{what}: {type(exc).__name__}") from exc
            delay = settings.BOT_DISCORD_RETRY_SECONDS * 2**attempt
        logger.warning("%s failed, attempt %d of %d; again in %.1f s", what, attempt + 1, attempts, delay)
        await asyncio.sleep(delay)
    raise AssertionError("unreachable")


def _retry_after(exc: discord.HTTPException) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return min(float(value), 30.0) if value is not None else None
    except ValueError:
        return None


async def send_reply(
    message: discord.Message, text: str, *, where: discord.abc.Messageable | None = None
) -> list[discord.Message]:
    """``text`` as a reply to ``message``, or, with ``where`` (the thread opened for it), sent there."""
    chunks = split_message(text) or [EMPTY_ANSWER]
    sent = [await persist(lambda: _first(message, where, chunks[0]), "reply")]
    channel = where or message.channel
    for chunk in chunks[1:]:
        send = functools.partial(channel.send, chunk, allowed_mentions=NO_MENTIONS)
        sent.append(await persist(send, "send"))
    return sent


def _first(
    message: discord.Message, where: discord.abc.Messageable | None, content: str
) -> Awaitable[discord.Message]:
    """An answer's first message: a reply in place, or the opening message of the thread made for it."""
    if where is None:
        return message.reply(content, allowed_mentions=REPLY_MENTIONS)
    return where.send(content, allowed_mentions=NO_MENTIONS)


async def open_thread(message: discord.Message, name: str) -> discord.Thread | None:
    """A public thread opened from ``message`` for its answer; None when Discord refuses (the bot lacks the Create
    Public Threads permission, the message already has a thread): the answer then goes in place."""
    try:
        return await persist(lambda: message.create_thread(name=name), "thread")
    except DeliveryFailed as exc:
        logger.warning("no thread for message %s, answering in place: %s", message.id, exc)
        return None


async def tell(message: discord.Message, where: discord.abc.Messageable | None, notice: str) -> None:
    """A notice about ``message`` (a refusal, a failure): in its thread when one was opened, else as a reply."""
    if where is None:
        await persist(lambda: message.reply(notice, allowed_mentions=REPLY_MENTIONS), "notice")
    else:
        await persist(lambda: where.send(notice, allowed_mentions=NO_MENTIONS), "notice")


class StreamedReply:
    """Mirrors a growing text into Discord messages, paced per message: replies to ``message``, or, with
    ``where`` (the thread opened for it), messages there."""

    def __init__(
        self,
        message: discord.Message,
        interval: float = EDIT_INTERVAL,
        *,
        where: discord.abc.Messageable | None = None,
    ) -> None:
        self.message = message
        self.where = where
        self.channel = where or message.channel
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
            async with typing_indicator(self.channel):
                await changed.wait()
                # A moment's grace: an answer that is already complete goes out whole, and a streamed one starts
                # with more than a word.
                await asyncio.wait({reader}, timeout=FIRST_MESSAGE_GRACE)
            while not reader.done():
                changed.clear()
                await self._sync(text, final=False)
                await changed.wait()
            reader.result()  # an error before the first text reaches the caller
            await self._sync(text, final=True)
        except asyncio.CancelledError:
            await self._interrupted(text)
            raise
        finally:
            # Awaited, so the provider's stream is closed here and its errors are not masked by a second reader.
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        return text

    async def _interrupted(self, text: str) -> None:
        """A shutdown cancelled the stream: leave a finished message behind, not one frozen mid-sentence."""
        # One try, briefly: the process is stopping and the usage rows still have to be written after this.
        try:
            async with asyncio.timeout(INTERRUPT_TIMEOUT):
                if self.sent:
                    final = split_message(text + INTERRUPTED_NOTE)
                    last = len(final) - 1
                    if last < len(self.sent):
                        await self.sent[last].edit(content=final[last], allowed_mentions=NO_MENTIONS)
                    else:
                        await self.channel.send(final[last], allowed_mentions=NO_MENTIONS)
                else:
                    await _first(self.message, self.where, INTERRUPTED_NOTICE)
        except Exception:  # shutting down: the log has it, nothing more to try
            logger.warning("could not mark message %s as interrupted", self.message.id, exc_info=True)

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
            sent = await persist(lambda: _first(self.message, self.where, content), "reply")
        else:
            sent = await persist(lambda: self.channel.send(content, allowed_mentions=NO_MENTIONS), "send")
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
        target = self.sent[index]
        await persist(lambda: target.edit(content=content, allowed_mentions=NO_MENTIONS), "edit")
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


@contextlib.asynccontextmanager
async def typing_indicator(channel: Any) -> AsyncIterator[None]:
    """The typing indicator, best effort: a failing indicator never stops an answer."""
    try:
        typing = channel.typing()
        await typing.__aenter__()
    except discord.HTTPException:
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(discord.HTTPException):
            await typing.__aexit__(None, None, None)


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
