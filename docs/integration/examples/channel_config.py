"""Example (docs/integration/loading-bot-configuration.md): what applies in a channel, the way the chat cog asks.

``bot.settings.get(guild_id)`` (a ``botcore.settings_cache.SettingsCache``) returns the guild's ``SettingsSnapshot``:
one indexed query when nothing changed (it compares the settings row's ``(pk, version)``), a reload of the settings
and channel overrides when something was saved, so the answer is current without a restart.
``snapshot.effective(channel_id)`` then merges the channel's override, the guild's row and the instance default.
"""

from __future__ import annotations

from botcore.settings_cache import SettingsCache
from guilds.effective import Effective, SettingsSnapshot


def settings_in_channel(snapshot: SettingsSnapshot, channel_id: int) -> Effective | None:
    """Pure: what an answer in ``channel_id`` uses, or None when Parley may not answer there.

    ``channel_id`` is already a thread's parent. Allowed is not triggered: the chat cog still needs a target user,
    a mention or a reply to the bot.
    """
    if not (snapshot.enabled and snapshot.allows_channel(channel_id)):
        return None
    return snapshot.effective(channel_id)


async def channel_settings(
    cache: SettingsCache, guild_id: int, channel_id: int, *, parent_id: int | None = None
) -> Effective | None:
    """What applies in ``channel_id`` of guild ``guild_id`` (Discord ids); None if Parley does not answer there.

    Threads inherit everything from their parent: pass the thread's ``parent_id``. From a discord.py object,
    ``botcore.conversation.channel_key(channel)`` already returns the parent for a thread.
    """
    snapshot = await cache.get(guild_id)  # None: not an active guild of ours
    return None if snapshot is None else settings_in_channel(snapshot, parent_id or channel_id)
