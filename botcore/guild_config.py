"""What the bot needs to know about a guild's settings, read per message through a version-checked cache.

The dashboard bumps ``GuildSettings.version`` in the same transaction as every save. Before each message the bot
reads just that integer (one indexed query) and reloads the full settings only when it changed. This works the
same on the embedded default, where the web and bot processes share no cache, and with Redis.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

from guilds.models import DEFAULT_SYSTEM_PROMPT, ChannelSettings, Guild, GuildSettings
from llm import registry


@dataclass(frozen=True)
class ChannelOverride:
    system_prompt: str
    model: str


@dataclass(frozen=True)
class GuildConfig:
    guild_pk: int | None
    guild_id: int | None
    version: int
    settings_pk: int = 0
    enabled: bool = True
    allowed_channel_ids: frozenset[int] = frozenset()
    target_user_ids: frozenset[int] = frozenset()
    reply_on_mention: bool = True
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    model: str = ""
    fallback_model: str = ""
    temperature: float = 0.7
    max_output_tokens: int = 1024
    history_messages: int = 10
    streaming: bool = True
    daily_budget_usd: Decimal | None = None
    user_messages_per_minute: int | None = None
    user_messages_per_day: int | None = None
    overrides: dict[int, ChannelOverride] = field(default_factory=dict)

    def allows_channel(self, channel_id: int) -> bool:
        return not self.allowed_channel_ids or channel_id in self.allowed_channel_ids

    def is_target(self, user_id: int) -> bool:
        return user_id in self.target_user_ids or user_id in settings.TARGET_USER_IDS

    def prompt_for(self, channel_id: int) -> str:
        override = self.overrides.get(channel_id)
        return override.system_prompt if override and override.system_prompt else self.system_prompt

    def model_for(self, channel_id: int) -> str:
        override = self.overrides.get(channel_id)
        return override.model if override and override.model else self.model


def dm_config() -> GuildConfig:
    """Direct messages have no guild: the defaults, answering only global target users."""
    return GuildConfig(guild_pk=None, guild_id=None, version=0, model=registry.default_model_id())


def _version_sql() -> str:
    # Run before every message: plain SQL skips the ORM's query building, which costs more than the query.
    settings_table = connection.ops.quote_name(GuildSettings._meta.db_table)
    guild_table = connection.ops.quote_name(Guild._meta.db_table)
    return (
        f"SELECT s.id, s.version FROM {settings_table} s JOIN {guild_table} g ON g.id = s.guild_id "  # noqa: S608
        "WHERE g.discord_id = %s AND g.is_active"
    )


def _version_of(guild_id: int) -> tuple[int, int] | None:
    """The row's id is part of the version: a guild deleted and synced again starts over at version 1."""
    with connection.cursor() as cursor:
        cursor.execute(_version_sql(), [guild_id])
        row = cursor.fetchone()
    return (row[0], row[1]) if row else None


def _load(guild_id: int) -> GuildConfig | None:
    row = GuildSettings.objects.select_related("guild").filter(guild__discord_id=guild_id).first()
    if row is None or not row.guild.is_active:
        return None
    overrides = {
        item.channel_id: ChannelOverride(item.system_prompt, item.model)
        for item in ChannelSettings.objects.filter(guild_id=row.guild_id)
    }
    return GuildConfig(
        guild_pk=row.guild_id,
        guild_id=guild_id,
        version=row.version,
        settings_pk=row.pk,
        enabled=row.enabled,
        allowed_channel_ids=frozenset(row.allowed_channel_ids),
        target_user_ids=frozenset(row.target_user_ids),
        reply_on_mention=row.reply_on_mention,
        system_prompt=row.system_prompt,
        model=row.model,
        fallback_model=row.fallback_model,
        temperature=row.temperature,
        max_output_tokens=row.max_output_tokens,
        history_messages=row.history_messages,
        streaming=row.streaming,
        daily_budget_usd=row.daily_budget_usd,
        user_messages_per_minute=row.user_messages_per_minute,
        user_messages_per_day=row.user_messages_per_day,
        overrides=overrides,
    )


def _fresh(guild_id: int, cached: GuildConfig | None) -> GuildConfig | None:
    if cached is not None and _version_of(guild_id) == (cached.settings_pk, cached.version):
        return cached
    return _load(guild_id)


class GuildConfigCache:
    """Per-process cache of GuildConfig, revalidated against the database version at most every
    ``recheck_seconds`` per guild (BOT_SETTINGS_RECHECK_SECONDS, default 1 s: a dashboard save reaches the bot
    within a second; 0 checks before every message)."""

    def __init__(self, recheck_seconds: float | None = None) -> None:
        self.recheck_seconds = (
            settings.BOT_SETTINGS_RECHECK_SECONDS if recheck_seconds is None else recheck_seconds
        )
        self._configs: dict[int, GuildConfig] = {}
        self._checked: dict[int, float] = {}

    async def get(self, guild_id: int) -> GuildConfig | None:
        cached = self._configs.get(guild_id)
        now = time.monotonic()
        if cached is not None and now - self._checked.get(guild_id, 0.0) < self.recheck_seconds:
            return cached
        config = await sync_to_async(_fresh)(guild_id, cached)
        if config is None:
            self.forget(guild_id)
        else:
            self._configs[guild_id] = config
            self._checked[guild_id] = now
        return config

    def forget(self, guild_id: int) -> None:
        self._configs.pop(guild_id, None)
        self._checked.pop(guild_id, None)
