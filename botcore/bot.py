"""Parley's discord.py client: an AutoShardedBot that loads the cogs in ``botcore/cogs/``.

Several ``runbot`` processes with disjoint ``shard_ids`` and the same ``shard_count`` run one bot together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pkgutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import discord
import yarl
from discord.ext import commands
from django.conf import settings

from botcore.settings_cache import SettingsCache
from llm.limits import LimitGate

logger = logging.getLogger(__name__)

COGS_DIR = Path(__file__).resolve().parent / "cogs"
# After the grace period, how long interrupted answers get to leave their note (they take one 3 s try).
DRAIN_AFTER_CANCEL_SECONDS = 5.0


def configure_endpoints() -> None:
    """Point discord.py at DISCORD_API_BASE / DISCORD_GATEWAY_URL (a REST proxy, or the local fake in tests)."""
    discord.http.Route.BASE = settings.DISCORD_API_BASE
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.DISCORD_GATEWAY_URL)


def intents() -> discord.Intents:
    """Only what Parley reads: guilds (for the sync), messages in guilds and DMs, and their content."""
    return discord.Intents(guilds=True, guild_messages=True, dm_messages=True, message_content=True)


class ParleyBot(commands.AutoShardedBot):
    def __init__(
        self,
        *,
        shard_count: int | None = None,
        shard_ids: list[int] | None = None,
        identify_delay: float = 5.0,
    ) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            help_command=None,
            intents=intents(),
            shard_count=shard_count,
            shard_ids=shard_ids,  # type: ignore[arg-type]  # None means "all", as discord.py documents
            # Memory grows with caches: no member cache or chunking; a small message cache serves reply chains.
            max_messages=settings.BOT_MESSAGE_CACHE or None,
            member_cache_flags=discord.MemberCacheFlags.none(),
            chunk_guilds_at_startup=False,
            allowed_mentions=discord.AllowedMentions.none(),
            guild_ready_timeout=settings.BOT_GUILD_READY_TIMEOUT,
        )
        self.identify_delay = identify_delay
        self.settings = SettingsCache()
        self.limits = LimitGate()
        # Shard id -> ShardStatus.Status; read by /health, written by the status cog.
        self.shard_states: dict[int, str] = {}
        # Shards whose guilds are in the database since their last READY (the guild sync cog adds them).
        self.synced_shards: set[int] = set()
        # Answers being given now; SIGTERM lets them finish (see drain).
        self.accepting = True
        self.in_flight: set[asyncio.Task[Any]] = set()

    @contextlib.contextmanager
    def answering(self) -> Iterator[None]:
        """Marks the current task as giving an answer, for ``drain``."""
        task = asyncio.current_task()
        assert task is not None
        self.in_flight.add(task)
        try:
            yield
        finally:
            self.in_flight.discard(task)

    async def drain(self, grace: float) -> None:
        """Stop taking questions; give the answers in progress ``grace`` seconds, then interrupt the rest (each
        finishes its message with a notice and records its usage row as interrupted)."""
        self.accepting = False
        running = set(self.in_flight)
        if not running:
            return
        logger.info("waiting up to %.0f s for %d answers in progress", grace, len(running))
        _, late = await asyncio.wait(running, timeout=grace)
        for task in late:
            task.cancel()
        if late:
            logger.warning("interrupted %d answers still running after %.0f s", len(late), grace)
            # Each marks its message in one short try (botcore.replying.INTERRUPT_TIMEOUT) and queues its row.
            await asyncio.wait(late, timeout=DRAIN_AFTER_CANCEL_SECONDS)

    @property
    def own_shard_ids(self) -> list[int]:
        return list(self.shard_ids or range(self.shard_count or 1))

    async def setup_hook(self) -> None:
        self._settings_listener = asyncio.create_task(self.settings.listen(), name="settings-push")
        # Found by path, not imported here: the cogs import this module.
        for module in pkgutil.iter_modules([str(COGS_DIR)]):
            if not module.name.startswith("_"):
                await self.load_extension(f"botcore.cogs.{module.name}")
        logger.info("cogs loaded: %s", ", ".join(sorted(self.cogs)))
        try:
            await self.sync_app_commands()
        except discord.HTTPException as exc:
            # Commands stay as they were; messages are answered either way.
            logger.warning("slash command sync failed: %s", exc)

    async def sync_app_commands(self) -> None:
        """Register the slash commands with Discord: per guild in development (instant), globally in production.
        Only the process running shard 0 does it."""
        if 0 not in self.own_shard_ids or not settings.BOT_SYNC_COMMANDS:
            return
        if settings.DISCORD_DEV_GUILD_ID:
            guild = discord.Object(id=settings.DISCORD_DEV_GUILD_ID)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
        else:
            synced = await self.tree.sync()
        where = "dev guild" if settings.DISCORD_DEV_GUILD_ID else "global"
        logger.info("synced %d slash commands (%s)", len(synced), where)

    async def on_message(self, message: discord.Message) -> None:
        """No prefix commands: the chat cog answers messages and slash commands do the rest."""

    async def close(self) -> None:
        listener = getattr(self, "_settings_listener", None)
        if listener is not None:
            listener.cancel()
        await super().close()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        # Discord allows max_concurrency IDENTIFYs per 5 s; tests against the local fake set the delay to 0.
        if not initial and self.identify_delay:
            await asyncio.sleep(self.identify_delay)
