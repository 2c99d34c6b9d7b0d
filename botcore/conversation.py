"""Turning a Discord message and its reply chain into the messages sent to the LLM."""

from __future__ import annotations

import logging
import re
from typing import Any

import discord

from botcore.attachments import MAX_IMAGES, content_with_attachments

logger = logging.getLogger(__name__)

# About four characters a token: keeps the history inside a budget without a tokenizer in the hot path.
CHARS_PER_TOKEN = 4
HISTORY_TOKEN_BUDGET = 3000


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


async def build_messages(
    *, system_prompt: str, history: list[discord.Message], message: discord.Message, bot_id: int, vision: bool
) -> list[dict[str, Any]]:
    """System prompt, then the reply chain, then the new message; user turns carry the speaker's name."""
    turns: list[dict[str, Any]] = []
    image_budget = [MAX_IMAGES]
    # Newest first, so the image budget goes to the message being answered before older ones.
    for item in reversed([*history, message]):
        text = clean_text(item, bot_id)
        if item.author.id == bot_id:
            turns.append({"role": "assistant", "content": text})
            continue
        content = await content_with_attachments(
            f"{author_name(item)}: {text}", list(item.attachments), vision=vision, image_budget=image_budget
        )
        turns.append({"role": "user", "content": content})
    turns.reverse()
    budget = HISTORY_TOKEN_BUDGET * CHARS_PER_TOKEN
    # Drop the oldest turns first; the new message always goes.
    while len(turns) > 1 and sum(_size(turn["content"]) for turn in turns) > budget:
        turns.pop(0)
    if system_prompt:
        turns.insert(0, {"role": "system", "content": system_prompt})
    return turns


def _size(content: str | list[dict[str, Any]]) -> int:
    if isinstance(content, str):
        return len(content)
    return sum(len(part.get("text", "")) for part in content)
