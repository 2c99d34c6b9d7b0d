"""Parley's discord.py client: an AutoShardedBot that loads the cogs in ``botcore/cogs/``.

Several ``runbot`` processes with disjoint ``shard_ids`` and the same ``shard_count`` run one bot together: set by
hand, or leased from the database (``placement``, ``runbot --shards auto``), in which case shards also start and
stop while the client runs. Either way every IDENTIFY waits for its bucket's bot-wide slot (``botcore.identify``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pkgutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord
import yarl
from discord.ext import commands
from django.conf import settings

from botcore.identify import IdentifyGate
from botcore.settings_cache import SettingsCache
from llm.limits import LimitGate

if TYPE_CHECKING:
    from botcore.placement import ShardPlacement

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
        placement: ShardPlacement | None = None,
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
        # Spaces IDENTIFYs per bucket across every process; it learns max_concurrency in setup_hook.
        self.identify_gate = IdentifyGate(identify_delay)
        self.placement = placement
        # --shards auto: shard id -> the task connecting it (see start_shard), and one launch at a time per bucket.
        self._launching: dict[int, asyncio.Task[None]] = {}
        self._bucket_locks: dict[int, asyncio.Lock] = {}
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
        if self.placement is not None:
            # Only the leased shards: none before the first lease, where discord.py would read "all".
            return sorted(self.shard_ids or [])
        return list(self.shard_ids or range(self.shard_count or 1))

    async def setup_hook(self) -> None:
        await self._learn_gateway()
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

    async def _learn_gateway(self) -> None:
        """``GET /gateway/bot``: max_concurrency for the IDENTIFY slots and, under ``--shards auto``, the
        recommended shard count; then the placement picks this process's shards (it may wait, as a standby)."""
        if self.placement is None and self.identify_gate.spacing <= 0:
            return
        recommended = 0
        try:
            recommended, _, limits = await self.http.get_bot_gateway()
        except (discord.HTTPException, discord.GatewayNotFound):
            if self.placement is not None and self.placement.requested_count is None:
                raise
            logger.warning("GET /gateway/bot failed: identifying as if max_concurrency were 1")
        else:
            self.identify_gate.max_concurrency = max(int(limits.get("max_concurrency", 1)), 1)
            logger.info(
                "Discord: %d shards recommended, max_concurrency %d, %s of %s session starts left today",
                recommended, self.identify_gate.max_concurrency, limits.get("remaining"), limits.get("total"),
            )  # fmt: skip
        if self.placement is not None:
            await self.placement.join(self, recommended)

    def use_shard_count(self, count: int) -> None:
        self.shard_count = count
        self._connection.shard_count = count  # read by every new gateway connection

    async def launch_shards(self) -> None:
        if self.placement is None:
            await super().launch_shards()
            return
        # The placement chose the count and the ids; each shard connects in a task of its own (start_shard).
        self.use_shard_count(self.shard_count or 1)
        self._connection.shard_ids = list(self.shard_ids or [])
        for shard_id in self.own_shard_ids:
            self._launch(shard_id)

    def start_shard(self, shard_id: int) -> None:
        """Connect one more shard in the running client (a shard leased from a process that went away)."""
        self.shard_ids = sorted({*(self.shard_ids or []), shard_id})
        self._connection.shard_ids = self.shard_ids
        self._launch(shard_id)

    def _launch(self, shard_id: int) -> None:
        running = self._launching.get(shard_id)
        if running is not None and not running.done():
            return
        self._launching[shard_id] = asyncio.create_task(
            self._launch_one(shard_id), name=f"launch-shard-{shard_id}"
        )

    async def _launch_one(self, shard_id: int) -> None:
        # launch_shard opens the socket, then waits for the IDENTIFY slot (and retries a failed connection on its
        # own): one shard of a bucket at a time, so no socket idles for long between HELLO and IDENTIFY, and none
        # outwaits launch_shard's timeout (shard_connect_timeout, 180 s) behind the others of its bucket.
        bucket = self.identify_gate.bucket(shard_id)
        async with self._bucket_locks.setdefault(bucket, asyncio.Lock()):
            await self.launch_shard(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY, shard_id)

    async def stop_shard(self, shard_id: int) -> None:
        """Disconnect a shard this process no longer leases; its status row is left to the next owner."""
        self.shard_ids = [s for s in self.shard_ids or [] if s != shard_id]
        self._connection.shard_ids = self.shard_ids
        self.shard_states.pop(shard_id, None)
        self.synced_shards.discard(shard_id)
        launching = self._launching.pop(shard_id, None)
        if launching is not None and not launching.done():
            launching.cancel()
        shard = self.get_shard(shard_id)
        if shard is not None:
            await shard.disconnect()

    async def close_strays(self) -> None:
        """Disconnect any shard outside ``own_shard_ids`` that discord.py reconnected on its own (a reconnect queued
        just before ``stop_shard``)."""
        own = set(self.own_shard_ids)
        for shard_id, shard in self.shards.items():
            if shard_id not in own and not shard.is_closed():
                logger.warning("shard %s reconnected after it was handed over: disconnecting it", shard_id)
                await shard.disconnect()

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
        for launching in self._launching.values():
            launching.cancel()
        await super().close()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        # The shared slot replaces discord.py's own 5 s sleep, which spaced this process's IDENTIFYs only.
        await self.identify_gate.wait(shard_id)
