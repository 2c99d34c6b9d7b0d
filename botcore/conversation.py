"""Turning a Discord message and its reply chain into the turns of a conversation (``llm.prompting.Turn``)."""

from __future__ import annotations

import logging
import re
from typing import Any

import discord

from botcore.attachments import MAX_IMAGES, read_attachments
from llm.prompting import Turn

logger = logging.getLogger(__name__)


def channel_key(channel: Any) -> int:
    """Threads count as their parent channel for allowed channels and overrides."""
    parent_id = getattr(channel, "parent_id", None)
    if isinstance(channel, discord.Thread) and parent_id:
        return int(parent_id)
    return int(channel.id)


def role_ids(author: Any) -> list[int]:
    """The ids of a member's roles, highest in the guild's role list first (a role override of a higher role wins);
    none for a user outside a guild. The roles come with the message or interaction, their positions from
    discord.py's guild cache, so they are as current as Discord's own."""
    roles = getattr(author, "roles", None) or []
    return [role.id for role in sorted(roles, reverse=True) if not role.is_default()]


def owned_thread(channel: Any, bot_id: int) -> bool:
    """A thread the bot opened: in a channel with a thread per conversation, it is one conversation."""
    return isinstance(channel, discord.Thread) and channel.owner_id == bot_id


def thread_name(message: discord.Message, bot_id: int) -> str:
    """A name for the thread opened from ``message``: its first line, else whose conversation it is."""
    first = next((line.strip() for line in clean_text(message, bot_id).splitlines() if line.strip()), "")
    name = first or f"Conversation with {author_name(message)}"
    return name if len(name) <= 90 else name[:89].rstrip() + "…"


def clean_text(message: discord.Message, bot_id: int) -> str:
    """The message text with the bot's own mention removed and other mentions made readable."""
    names = {user.id: getattr(user, "display_name", user.name) for user in message.mentions}

    def replace(match: re.Match[str]) -> str:
        user_id = int(match.group(1))
        return "" if user_id == bot_id else f"@{names.get(user_id, 'someone')}"

    return re.sub(r"<@!?(\d+)>", replace, message.content).strip()


def author_name(message: discord.Message) -> str:
    return getattr(message.author, "display_name", None) or message.author.name


async def reply_chain(bot: discord.Client, message: discord.Message, limit: int) -> list[discord.Message]:
    """The messages this one replies to, oldest first, up to ``limit`` of them."""
    chain: list[discord.Message] = []
    current = message
    while len(chain) < limit and current.reference and current.reference.message_id:
        parent = await _referenced(bot, current)
        if parent is None:
            break
        chain.append(parent)
        current = parent
    chain.reverse()
    return chain


async def _referenced(bot: discord.Client, message: discord.Message) -> discord.Message | None:
    reference = message.reference
    assert reference is not None and reference.message_id is not None
    if isinstance(reference.resolved, discord.Message):
        return reference.resolved
    if isinstance(reference.resolved, discord.DeletedReferencedMessage):
        return None
    cached = bot._connection._get_message(reference.message_id)
    if cached is not None:
        return cached
    try:
        return await message.channel.fetch_message(reference.message_id)
    except discord.HTTPException as exc:
        logger.info("reply chain stops: cannot fetch message %s (%s)", reference.message_id, exc.status)
        return None


# Messages people write (plain ones and replies); system messages such as "thread created" are not conversation.
_SPOKEN = (discord.MessageType.default, discord.MessageType.reply)


async def recent_messages(message: discord.Message, limit: int) -> list[discord.Message]:
    """The ``limit`` messages before this one in its channel, oldest first: the conversation of a channel where
    Parley answers every message, or of a thread, where the message the thread was opened from comes first."""
    if limit <= 0:
        return []
    channel = message.channel
    try:
        found = [m async for m in channel.history(limit=limit, before=message) if m.type in _SPOKEN]
    except discord.HTTPException as exc:
        logger.info("history of channel %s not read (%s)", channel.id, exc.status)
        return []
    found.reverse()
    if isinstance(channel, discord.Thread) and len(found) < limit:
        starter = await _thread_starter(channel)
        if starter is not None:
            found.insert(0, starter)
    return found


async def _thread_starter(thread: discord.Thread) -> discord.Message | None:
    """The message a thread was opened from (it lives in the parent channel, with the thread's id)."""
    if thread.starter_message is not None:
        return thread.starter_message
    parent = thread.parent
    if not isinstance(parent, discord.TextChannel):
        return None
    try:
        return await parent.fetch_message(thread.id)
    except discord.HTTPException:
        return None  # a thread not opened from a message, or the message is gone


SUMMARY_MESSAGE_CHARS = 500  # one message's share of a transcript
SUMMARY_TRANSCRIPT_CHARS = 16_000  # about 4,000 tokens: the newest messages that fit


def transcript(messages: list[discord.Message], bot_id: int) -> str:
    """Messages (newest first, as ``channel.history`` gives them) as "name: text" lines, oldest first, for a model
    to summarize: each cut at ``SUMMARY_MESSAGE_CHARS``, the oldest left out past ``SUMMARY_TRANSCRIPT_CHARS``."""
    lines: list[str] = []
    size = 0
    for item in messages:
        if item.type not in _SPOKEN:
            continue
        text = " ".join(clean_text(item, bot_id).split())
        files = ", ".join(attachment.filename for attachment in item.attachments)
        text = " ".join(part for part in (text, f"[attached: {files}]" if files else "") if part)
        if not text:
            continue
        if len(text) > SUMMARY_MESSAGE_CHARS:
            text = text[: SUMMARY_MESSAGE_CHARS - 1] + "…"
        line = f"{author_name(item)}: {text}"
        if size + len(line) > SUMMARY_TRANSCRIPT_CHARS:
            break
        lines.append(line)
        size += len(line) + 1
    if not lines:
        return "(There are no messages to summarize.)"
    return "\n".join(reversed(lines))


async def conversation(
    bot_id: int, history: list[discord.Message], message: discord.Message, *, vision: bool
) -> list[Turn]:
    """The reply chain and the new message as turns for ``llm.answering`` (oldest first)."""
    turns: list[Turn] = []
    image_budget = [MAX_IMAGES]
    # Newest first, so the image budget goes to the message being answered before older ones.
    for item in reversed([*history, message]):
        text = clean_text(item, bot_id)
        if item.author.id == bot_id:
            turns.append(Turn(role="assistant", text=text))
            continue
        notes, images = await read_attachments(
            list(item.attachments), vision=vision, image_budget=image_budget
        )
        turns.append(Turn(role="user", text=text, speaker=author_name(item), notes=notes, images=images))
    turns.reverse()
    return turns
