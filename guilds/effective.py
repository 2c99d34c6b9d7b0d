"""What applies in a channel: the guild's settings, the channel's override and the instance defaults, in one place.

    snapshot = SettingsSnapshot.load(guild_id)          # one guild's settings row and overrides, as stored
    effective = snapshot.effective(channel_id)       # what an answer in that channel uses
    effective = snapshot.effective(channel_id, roles=[...])  # ... for someone with these Discord roles

A prompt or model comes from the channel's override, else from the author's highest role that has an override
(``roles``: their role ids, highest in Discord's role list first), else from the guild's settings, else the
instance's default model. A thread is passed as its parent channel (the caller knows Discord's channel types;
this module does not). Direct
messages have no guild: ``SettingsSnapshot.for_dm()`` holds an unsaved settings row, so they get the model's
defaults, including ``LLM_DEFAULT_MODEL``. The bot, ``/ask``, ``/parley settings``, the playground and the
settings page all ask here; the bot keeps snapshots in a cache that compares ``version`` (see ``botcore``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from django.conf import settings
from django.db import connection

from guilds.models import ChannelSettings, Guild, GuildSettings, RoleSettings
from llm import registry
from llm.answering import AnswerSettings
from llm.keys import Keys, ServerKey, server_keys
from llm.limits import Limits

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Effective(AnswerSettings):
    """What applies in one channel: the answer's settings, and how the bot gathers and sends it."""

    channel_id: int | None
    history_messages: int
    streaming: bool
    mode: str = field(default="", kw_only=True)  # the channel's conversation mode (ChannelSettings.Mode)
    cooldown_seconds: int = field(
        default=0, kw_only=True
    )  # "answer every message": quiet this long after an answer


@dataclass(frozen=True)
class SettingsSnapshot:
    """A guild's settings row and channel overrides as read at one ``version``: what the bot caches.

    ``row`` is the model instance itself, so every field of ``GuildSettings`` is here without a copied list;
    treat it as read-only.
    """

    guild_id: int | None  # the Discord id; None for direct messages
    row: GuildSettings
    overrides: Mapping[int, ChannelSettings] = field(default_factory=lambda: MappingProxyType({}))
    roles: Mapping[int, RoleSettings] = field(default_factory=lambda: MappingProxyType({}))
    # The guild's own provider keys, decrypted (llm/keys.py): in memory only, never written or logged.
    keys: Mapping[str, ServerKey] = field(default_factory=lambda: MappingProxyType({}), repr=False)

    @classmethod
    def for_dm(cls) -> SettingsSnapshot:
        return cls(guild_id=None, row=GuildSettings())

    @classmethod
    def load(cls, guild_id: int) -> SettingsSnapshot | None:
        """The snapshot of the active guild with Discord id ``guild_id`` (four queries), or None."""
        row = GuildSettings.objects.select_related("guild").filter(guild__discord_id=guild_id).first()
        if row is None or not row.guild.is_active:
            return None
        overrides = {item.channel_id: item for item in ChannelSettings.objects.filter(guild_id=row.guild_id)}
        roles = {item.role_id: item for item in RoleSettings.objects.filter(guild_id=row.guild_id)}
        return cls(
            guild_id=guild_id,
            row=row,
            overrides=MappingProxyType(overrides),
            roles=MappingProxyType(roles),
            keys=server_keys(row.guild_id),
        )

    @classmethod
    def of(cls, guild: Guild, *, with_keys: bool = False) -> SettingsSnapshot:
        """The snapshot of a guild the caller already holds (the dashboard), without the role overrides: a page
        answers as nobody in particular, so no role applies. ``with_keys`` for a page that calls a model (the
        playground): the guild's own provider keys too (one more query)."""
        overrides = {item.channel_id: item for item in ChannelSettings.objects.filter(guild=guild)}
        keys = server_keys(guild.pk) if with_keys else MappingProxyType({})
        return cls(
            guild_id=guild.discord_id, row=guild.settings, overrides=MappingProxyType(overrides), keys=keys
        )

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

    def is_blocked(self, user_id: int) -> bool:
        """Someone this guild's admins blocked: never answered, never told (DMs have no block list)."""
        return user_id in self.row.blocked_user_ids

    def is_target(self, user_id: int) -> bool:
        """Target users are answered whatever they write: this guild's, and the instance's everywhere."""
        return user_id in self.row.target_user_ids or user_id in settings.TARGET_USER_IDS

    def answers_dm_from(self, user_id: int) -> bool:
        """Direct messages (unless DM_ENABLED is off) are answered for the instance's target users, or for
        everyone with DM_ANSWER_EVERYONE."""
        if not settings.DM_ENABLED:
            return False
        return settings.DM_ANSWER_EVERYONE or user_id in settings.TARGET_USER_IDS

    def override(self, channel_id: int | None) -> ChannelSettings | None:
        return self.overrides.get(channel_id) if channel_id is not None else None

    def effective(self, channel_id: int | None, *, roles: Sequence[int] = ()) -> Effective:
        row = self.row
        override = self.override(channel_id)
        by_role = [self.roles[role_id] for role_id in roles if role_id in self.roles]
        # Field by field: the channel's override, then the author's highest role that sets it, then the guild.
        layers: list[ChannelSettings | RoleSettings] = [*([override] if override else []), *by_role]
        prompt = next((layer.system_prompt for layer in layers if layer.system_prompt), row.system_prompt)
        model = next((layer.model for layer in layers if layer.model), row.model)
        return Effective(
            guild_pk=self.guild_pk,
            channel_id=channel_id,
            system_prompt=prompt,
            model=model or GuildSettings().model,
            fallback_model=row.fallback_model,
            temperature=row.temperature,
            max_output_tokens=row.max_output_tokens,
            history_messages=row.history_messages,
            streaming=row.streaming,
            limits=self._limits(),
            reasoning_display=row.reasoning_display,
            mode=override.mode if override else "",
            cooldown_seconds=override.cooldown_seconds if override else 0,
            # Direct messages belong to no server: the instance's keys, whatever LLM_REQUIRE_SERVER_KEYS says.
            keys=Keys(own=self.keys, instance=self.guild_id is None or not registry.server_keys_required()),
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
