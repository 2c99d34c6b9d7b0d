"""Example (docs/integration/loading-bot-configuration.md): which model and prompt apply in a channel.

What a cog asks before it calls the model. ``GuildConfigCache.get`` costs one indexed query when nothing
changed (it compares the settings row's ``(pk, version)``) and reloads the guild's settings and channel
overrides when the dashboard saved something, so the answer is always current without a restart.
"""

from __future__ import annotations

from dataclasses import dataclass

from botcore.guild_config import GuildConfig, GuildConfigCache
from llm import registry


@dataclass(frozen=True)
class ChannelSettingsView:
    enabled: bool  # Parley may answer here (it still needs a trigger: a target user, a mention, a reply)
    model: str
    system_prompt: str
    fallback_model: str
    overridden: bool  # the channel (or a thread's parent) has its own prompt or model


def settings_in_channel(config: GuildConfig, channel_id: int) -> ChannelSettingsView:
    """Pure: the guild's config seen from one channel. ``channel_id`` is already a thread's parent."""
    return ChannelSettingsView(
        enabled=config.enabled and config.allows_channel(channel_id),
        # An empty model means "the default": the chat cog falls back to the registry's default model too.
        model=config.model_for(channel_id) or registry.default_model_id(),
        system_prompt=config.prompt_for(channel_id),
        fallback_model=config.fallback_model,
        overridden=channel_id in config.overrides,
    )


async def channel_settings(
    configs: GuildConfigCache, guild_id: int, channel_id: int, *, parent_id: int | None = None
) -> ChannelSettingsView | None:
    """What applies in ``channel_id`` of guild ``guild_id`` (Discord ids); None if Parley is not in that guild.

    Threads inherit everything from their parent: pass the thread's ``parent_id``. From a discord.py object,
    ``botcore.conversation.channel_key(channel)`` already returns the parent for a thread.
    """
    config = await configs.get(guild_id)
    if config is None:
        return None
    return settings_in_channel(config, parent_id or channel_id)
