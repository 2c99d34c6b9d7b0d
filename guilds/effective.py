"""What applies in a channel: the guild's settings, the channel's override and the instance defaults, in one place.

    snapshot = SettingsSnapshot.load(guild_id)          # one guild's settings row and overrides, as stored
    effective = snapshot.effective(channel_id)       # what an answer in that channel uses

A thread is passed as its parent channel (the caller knows Discord's channel types; this module does not). Direct
messages have no guild: ``SettingsSnapshot.for_dm()`` holds an unsaved settings row, so they get the model's
defaults, including ``LLM_DEFAULT_MODEL``. The bot, ``/ask``, ``/parley settings``, the playground and the
settings page all ask here; the bot keeps snapshots in a cache that compares ``version`` (see ``botcore``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from django.conf import settings
from django.db import connection

from guilds.models import ChannelSettings, Guild, GuildSettings
from llm.answering import AnswerSettings
from llm.limits import Limits

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Effective(AnswerSettings):
    """What applies in one channel: the answer's settings, and how the bot gathers and sends it."""

    channel_id: int | None
    history_messages: int
    streaming: bool


@dataclass(frozen=True)
class SettingsSnapshot:
    """A guild's settings row and channel overrides as read at one ``version``: what the bot caches.

    ``row`` is the model instance itself, so every field of ``GuildSettings`` is here without a copied list;
    treat it as read-only.
    """

    guild_id: int | None  # the Discord id; None for direct messages
    row: GuildSettings
    overrides: Mapping[int, ChannelSettings] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def for_dm(cls) -> SettingsSnapshot:
        return cls(guild_id=None, row=GuildSettings())

    @classmethod
    def load(cls, guild_id: int) -> SettingsSnapshot | None:
        """The snapshot of the active guild with Discord id ``guild_id`` (two queries), or None."""
        row = GuildSettings.objects.select_related("guild").filter(guild__discord_id=guild_id).first()
        if row is None or not row.guild.is_active:
            return None
        overrides = {item.channel_id: item for item in ChannelSettings.objects.filter(guild_id=row.guild_id)}
        return cls(guild_id=guild_id, row=row, overrides=MappingProxyType(overrides))

    @classmethod
    def of(cls, guild: Guild) -> SettingsSnapshot:
        """The snapshot of a guild the caller already holds (the dashboard)."""
        overrides = {item.channel_id: item for item in ChannelSettings.objects.filter(guild=guild)}
        return cls(guild_id=guild.discord_id, row=guild.settings, overrides=MappingProxyType(overrides))

    @property
    def guild_pk(self) -> int | None:
        return self.row.guild_id

    @property
    def key(self) -> tuple[int, int]:
        """The stored row's id and version: a guild deleted and synced again starts over at version 1."""
        return (self.row.pk or 0, self.row.version)

    @property
    def enabled(self) -> bool:
        return self.row.enabled

    @property
    def reply_on_mention(self) -> bool:
        return self.row.reply_on_mention

    def allows_channel(self, channel_id: int) -> bool:
        return self.guild_id is None or self.row.allows_channel(channel_id)

    def is_target(self, user_id: int) -> bool:
        """Target users are answered whatever they write: this guild's, and the instance's everywhere."""
        return user_id in self.row.target_user_ids or user_id in settings.TARGET_USER_IDS

    def answers_dm_from(self, user_id: int) -> bool:
        """Direct messages are answered for the instance's target users, or for everyone with DM_ANSWER_EVERYONE."""
        return settings.DM_ANSWER_EVERYONE or user_id in settings.TARGET_USER_IDS

    def effective(self, channel_id: int | None) -> Effective:
        row = self.row
        override = self.overrides.get(channel_id) if channel_id is not None else None
        return Effective(
            guild_pk=self.guild_pk,
            channel_id=channel_id,
            system_prompt=(
                override.system_prompt if override and override.system_prompt else row.system_prompt
            ),
            model=(override.model if override and override.model else row.model) or GuildSettings().model,
            fallback_model=row.fallback_model,
            temperature=row.temperature,
            max_output_tokens=row.max_output_tokens,
            history_messages=row.history_messages,
            streaming=row.streaming,
            limits=self._limits(),
            reasoning_display=row.reasoning_display,
        )

    def _limits(self) -> Limits:
        if self.guild_id is None:  # direct messages share the instance's limits
            return Limits(
                daily_budget_usd=settings.DM_DAILY_BUDGET_USD,
                per_minute=settings.DM_USER_MESSAGES_PER_MINUTE,
                per_day=settings.DM_USER_MESSAGES_PER_DAY,
            )
        row = self.row
        return Limits(
            daily_budget_usd=row.daily_budget_usd,
            per_minute=row.user_messages_per_minute,
            per_day=row.user_messages_per_day,
        )


def _version_sql() -> str:
    # Run for every message the bot considers: plain SQL skips the ORM's query building, which costs more than
    # the query itself.
    settings_table = connection.ops.quote_name(GuildSettings._meta.db_table)
    guild_table = connection.ops.quote_name(Guild._meta.db_table)
    return (
        f"SELECT s.id, s.version FROM {settings_table} s JOIN {guild_table} g ON g.id = s.guild_id "  # noqa: S608
        "WHERE g.discord_id = %s AND g.is_active"
    )


def settings_key(guild_id: int) -> tuple[int, int] | None:
    """``SettingsSnapshot.key`` as stored now for the active guild with Discord id ``guild_id`` (one query)."""
    with connection.cursor() as cursor:
        cursor.execute(_version_sql(), [guild_id])
        row = cursor.fetchone()
    return (row[0], row[1]) if row else None


def refreshed(guild_id: int, cached: SettingsSnapshot | None) -> SettingsSnapshot | None:
    """``cached`` if it is still current, else a fresh snapshot (None: the guild is unknown or inactive)."""
    if cached is not None and settings_key(guild_id) == cached.key:
        return cached
    return SettingsSnapshot.load(guild_id)


# --- pushing a change to the bots -------------------------------------------------------------------------------
SETTINGS_GROUP = "parley.settings"  # the channel-layer group every bot process listens on


def crosses_processes() -> bool:
    """Only a Redis channel layer reaches the bot's process; the in-memory one stays inside this process."""
    backend = str(settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", ""))
    return not backend.endswith("InMemoryChannelLayer")


def settings_push(guild_id: int) -> None:
    """Tell the bots, at once, that a guild's settings changed (after the change is committed). Best effort: the
    bot checks the version at most every BOT_SETTINGS_RECHECK_SECONDS anyway, so a lost push costs a second."""
    if not crosses_processes():
        return
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    try:
        layer = get_channel_layer()
        if layer is not None:
            async_to_sync(layer.group_send)(
                SETTINGS_GROUP, {"type": "settings.changed", "guild_id": guild_id}
            )
    except Exception as exc:  # Redis away: the version check covers it
        logger.warning("settings push for guild %s failed: %s", guild_id, type(exc).__name__)
