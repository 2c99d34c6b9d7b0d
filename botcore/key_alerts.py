"""Telling a server's owner that a provider refused the server's own API key.

``llm.answering.answer`` marks the key refused the first time a provider answers 401 or 403 to it
(``llm.keys.key_refused``: one conditional update, so one question in one process wins) and names it in
``Outcome.keys_reported``. Only then is the owner told, so a server that keeps asking does not flood anyone: a
direct message to the guild's owner, or, when Discord will not deliver one (closed DMs, an unknown user), one line
in the channel where the question failed. The dashboard shows the refusal on the settings and keys pages until a
new key is set, and the audit log has its entry.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import discord
from django.conf import settings

from botcore.replying import NO_MENTIONS
from llm import registry

logger = logging.getLogger(__name__)


def alert_text(guild: discord.Guild, providers: Iterable[str]) -> str:
    labels = " and ".join(registry.provider_label(p) for p in providers)
    return (
        f"Parley: {labels} refused the API key set for the server **{discord.utils.escape_markdown(guild.name)}**, "
        f"so Parley cannot answer there with {labels} models. A server owner can set a new key at "
        f"{settings.SITE_URL}/dashboard/guilds/{guild.id}/keys/"
    )


async def tell_owner(
    bot: discord.Client, guild: discord.Guild | None, channel: Any, providers: Iterable[str]
) -> None:
    """Tell ``guild``'s owner (else ``channel``) that its keys for ``providers`` were refused; never raises."""
    providers = list(providers)
    if guild is None or not providers:
        return
    text = alert_text(guild, providers)
    try:
        owner = guild.owner or bot.get_user(guild.owner_id or 0) or await bot.fetch_user(guild.owner_id or 0)
        await owner.send(text, allowed_mentions=NO_MENTIONS)
        logger.info("told the owner of guild %s that its %s key was refused", guild.id, ", ".join(providers))
        return
    except Exception as exc:  # closed DMs (403), and a network failure too: the channel is the next place
        logger.info(
            "the owner of guild %s cannot get a direct message (%s): telling the channel",
            guild.id,
            getattr(exc, "status", type(exc).__name__),
        )
    try:
        await channel.send(text, allowed_mentions=NO_MENTIONS)
    except Exception as exc:  # the audit entry and the dashboard's banner still say it
        logger.warning(
            "the refused-key notice for guild %s was not delivered: %s", guild.id, type(exc).__name__
        )
