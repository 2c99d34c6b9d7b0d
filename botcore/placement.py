"""``runbot --shards auto``: each process leases a fair share of the shards from the database and runs those.

One ``AutoShardedBot`` per process, as with hand-set ``--shard-ids``; what changes is who picks the ids:

1. At start-up (``join``, from ``ParleyBot.setup_hook``) the process registers, waits until no other process has
   joined for ``settle`` seconds, claims ``ceil(shards / live processes)`` free shards, and the bot connects
   exactly those. A process that finds every shard held waits as a standby.
2. Every ``heartbeat`` seconds (``_beat``) it renews its leases and claims free ones up to its fair share: the
   shards of a process that died are free once their lease expires, those of one that stopped cleanly at once.
   Shards it gains are started in the running client (``ParleyBot.start_shard``), one task each, so a wait for
   an IDENTIFY slot never delays a heartbeat. Shards it lost (another process claimed them after its lease ran
   out) are stopped, and so are shards above the fair share once a newer process is ready to take them.
3. On SIGTERM, ``leave`` releases every lease so the others take over within one heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from asgiref.sync import sync_to_async
from django.db import DatabaseError

from botcore.leases import Tick, leases_prepare, leases_release, me, placement_leave, placement_tick
from config.probes import on_worker_thread

logger = logging.getLogger(__name__)


class ShardRunner(Protocol):
    """What the placement needs of the bot (``ParleyBot``, which imports this module)."""

    shard_ids: list[int] | None

    @property
    def own_shard_ids(self) -> list[int]: ...

    def use_shard_count(self, count: int) -> None: ...

    def start_shard(self, shard_id: int) -> None: ...

    async def stop_shard(self, shard_id: int) -> None: ...

    async def close_strays(self) -> None: ...


class ShardPlacement:
    def __init__(self, *, shard_count: int | None, heartbeat: float, lease: float) -> None:
        self.token = me()
        self.requested_count = shard_count  # --shard-count; None: Discord's recommendation
        self.heartbeat, self.lease = heartbeat, lease
        # Long enough for processes started together to see each other before the first claim.
        self.settle = heartbeat * 2
        self.settled = False
        self.held: frozenset[int] = frozenset()
        # After the database was away, every lease may have expired: live processes renew theirs first.
        self._recovering = False
        self._stopping = False  # shutting down: keep the leases held, claim and start nothing more
        self._left = False
        self._task: asyncio.Task[None] | None = None

    async def join(self, bot: ShardRunner, recommended: int) -> None:
        """Decide the shard count and the first shards, then keep the leases (see the module docstring)."""
        while True:
            try:
                count = await sync_to_async(leases_prepare)(
                    shard_count=self.requested_count or recommended, insist=self.requested_count is not None
                )
                break
            except DatabaseError as exc:  # no shard may be run without its lease: wait for the database
                logger.warning("shard leases unreadable (%s): trying again", type(exc).__name__)
                await asyncio.sleep(self.heartbeat)
        if count != (self.requested_count or recommended):
            logger.warning(
                "running processes lease %d shards (Discord recommends %d): keeping %d until they all restart",
                count, recommended, count,
            )  # fmt: skip
        bot.use_shard_count(count)
        standby_said = False
        while True:
            tick = await self._tick()
            if tick is not None and tick.held:
                break
            if tick is not None and tick.settled and not standby_said:
                logger.info("standby: all %d shards are held by %d live processes", count, tick.live - 1)
                standby_said = True
            # Settling: look again as soon as the wait could be over, not a whole heartbeat later.
            wait = self.heartbeat
            if tick is not None and not tick.settled:
                wait = min(wait, tick.settles_in + 0.05)
            await asyncio.sleep(wait)
        bot.shard_ids = sorted(tick.held)
        logger.info(
            "leased shards %s of %d (fair share %d over %d processes)",
            bot.shard_ids, count, tick.quota, tick.live,
        )  # fmt: skip
        self._task = asyncio.create_task(self._beat(bot), name="shard-leases")

    async def _tick(self) -> Tick | None:
        try:
            # Not on the shared database thread: a heartbeat must not queue behind a burst of messages.
            tick = await on_worker_thread(
                lambda: placement_tick(
                    token=self.token,
                    lease=self.lease,
                    settle=self.settle,
                    settled=self.settled,
                    claim=not (self._recovering or self._stopping),
                )
            )
        except DatabaseError as exc:
            # Leases live as long as the database is away for everyone; ours are renewed when it is back.
            if not self._recovering:  # once per outage, not every heartbeat
                logger.warning("shard leases not renewed: database unreachable (%s)", type(exc).__name__)
            self._recovering = True
            return None
        if self._recovering:
            logger.info("shard leases renewed: the database is back")
        self._recovering = False
        self._stopping = False  # shutting down: keep the leases held, claim and start nothing more
        self._left = False
        self.settled = tick.settled
        self.held = tick.held
        return tick

    async def _beat(self, bot: ShardRunner) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            tick = await self._tick()
            if tick is None:
                continue
            try:
                await self._apply(bot, tick)
            except Exception:  # the next heartbeat tries again; a dead loop would let every lease expire
                logger.exception("applying the shard leases failed")

    async def _apply(self, bot: ShardRunner, tick: Tick) -> None:
        running = set(bot.own_shard_ids)
        lost = running - tick.held
        if lost:
            logger.error("shards %s were claimed by another process: stopping them here", sorted(lost))
            for shard_id in sorted(lost):
                await bot.stop_shard(shard_id)
        if tick.release:
            logger.info(
                "handing shards %s back: fair share is %d over %d processes", sorted(tick.release), tick.quota,
                tick.live,
            )  # fmt: skip
            for shard_id in sorted(tick.release):
                await bot.stop_shard(shard_id)
            # Stopped first, released second: the next owner never overlaps with this process.
            await sync_to_async(leases_release)(token=self.token, shard_ids=sorted(tick.release))
            self.held = tick.held - tick.release
        for shard_id in sorted(self.held - running):
            if self._stopping:
                break
            logger.info("leased shard %s: starting it", shard_id)
            bot.start_shard(shard_id)
        await bot.close_strays()

    def stop_claiming(self) -> None:
        """The process is stopping: while it drains and closes, it renews what it holds and takes nothing new (a
        draining process that picked up shards a peer just released would only answer "restarting" on them)."""
        self._stopping = True

    async def leave(self) -> None:
        """Release every lease (after the gateway is closed), so the other processes take over at once."""
        if self._left:
            return
        self._left = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            released = await sync_to_async(placement_leave)(token=self.token)
        except DatabaseError as exc:  # they expire on their own
            logger.warning(
                "shard leases not released (%s): they expire in %.0f s", type(exc).__name__, self.lease
            )
            return
        logger.info("released %d shard leases", released)
