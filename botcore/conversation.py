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
