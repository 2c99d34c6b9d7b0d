"""``manage.py runbot``: run Parley's Discord bot (all shards, a slice set by hand, or a share leased from the
database with ``--shards auto``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from typing import Any

import discord
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from botcore.bot import ParleyBot, configure_endpoints
from botcore.decisions import decisions_flush
from botcore.health import start_health_server
from botcore.leases import ShardCountConflict
from botcore.placement import ShardPlacement
from botcore.status import shards_mark_disconnected
from config.probes import database_outage
from llm import providers
from llm.limits import reservations_settle_stale
from llm.usage import usage_flush, usage_replay_journal

logger = logging.getLogger("botcore.runbot")


def parse_shard_ids(value: str) -> list[int]:
    """``0,1,2`` or ``0-3`` (or a mix: ``0-3,8``)."""
    ids: list[int] = []
    try:
        for part in value.split(","):
            part = part.strip()
            if "-" in part:
                start, end = (int(x) for x in part.split("-", 1))
                if end < start:
                    raise ValueError
                ids.extend(range(start, end + 1))
            elif part:
                ids.append(int(part))
    except ValueError:
        raise CommandError(f"--shard-ids must look like 0,1,2 or 0-3, got {value!r}") from None
    if not ids or any(i < 0 for i in ids) or len(set(ids)) != len(ids):
        raise CommandError(f"--shard-ids must list distinct shard numbers, got {value!r}")
    return sorted(ids)


def _warm_llm_import() -> None:
    """litellm costs seconds of CPU to import: do it in the background so the first reply is not slow."""
    from llm.client import warm_import

    try:
        warm_import()
    except Exception:
        logger.exception("warming the LLM client failed")


class Command(BaseCommand):
    help = (
        "Run the Discord bot. Several processes run one bot: each with --shards auto (they share the shards out "
        "through the database), or with disjoint --shard-ids and the same --shard-count."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--shard-count", type=int, help="total shards (default: Discord's recommendation)"
        )
        parser.add_argument(
            "--shard-ids", help="the shards this process runs, e.g. 0,1 or 0-3 (default: all)"
        )
        parser.add_argument(
            "--shards",
            choices=["auto"],
            help="auto: lease a fair share of the shards from the database, take over those of processes that stop",
        )
        parser.add_argument("--no-health", action="store_true", help="do not serve /health")

    def handle(self, *args: Any, **options: Any) -> None:
        token = settings.DISCORD_BOT_TOKEN
        if not token:
            raise CommandError("No bot token: set DISCORD_BOT_TOKEN or DISCORD_BOT_TOKEN_FILE.")
        shard_count: int | None = options["shard_count"]
        shard_ids = parse_shard_ids(options["shard_ids"]) if options["shard_ids"] else None
        if shard_count is not None and shard_count < 1:
            raise CommandError("--shard-count must be at least 1")
        placement = None
        if options["shards"] == "auto":
            if shard_ids is not None:
                raise CommandError("--shards auto picks the shard ids itself: leave out --shard-ids")
            placement = _placement(shard_count)
        if shard_ids is not None:
            if shard_count is None:
                raise CommandError("--shard-ids needs --shard-count (every process must agree on the total)")
            if max(shard_ids) >= shard_count:
                raise CommandError(f"--shard-ids must be below --shard-count ({shard_count})")
        configure_endpoints()
        try:
            usage_replay_journal()
            if settled := reservations_settle_stale():
                logger.warning("%d reservations left by a process that died marked interrupted", settled)
        except Exception as exc:  # kept for the next start; the bot can answer without it
            logger.warning("usage journal not replayed: %s", type(exc).__name__)
        providers.run_inline()  # answering is the bot's job: its model calls run here, not in a child process
        threading.Thread(target=_warm_llm_import, name="llm-warm", daemon=True).start()
        try:
            bot = ParleyBot(
                shard_count=None if placement else shard_count,
                shard_ids=shard_ids,
                identify_delay=settings.BOT_IDENTIFY_DELAY_SECONDS,
                placement=placement,
            )
            asyncio.run(self._run(bot, token, health=not options["no_health"]))
        except ShardCountConflict as exc:
            raise CommandError(
                f"--shard-count {shard_count} disagrees with the {exc.current} shards the running processes lease: "
                "give the same count, or stop them all to change it."
            ) from None
        except discord.LoginFailure:
            raise CommandError("Discord rejected the bot token (401): check DISCORD_BOT_TOKEN.") from None
        except discord.PrivilegedIntentsRequired:
            raise CommandError(
                "The MESSAGE CONTENT intent is not enabled for this bot: turn it on in the Developer Portal."
            ) from None
        except OSError as exc:
            raise CommandError(f"Cannot start: {exc.strerror or exc}") from None

    async def _run(self, bot: ParleyBot, token: str, *, health: bool) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        runner = (
            await start_health_server(bot, settings.BOT_HEALTH_HOST, settings.BOT_HEALTH_PORT)
            if health
            else None
        )
        try:
            async with bot:
                bot_task = asyncio.create_task(bot.start(token))
                stop_task = asyncio.create_task(stop.wait())
                done, _ = await asyncio.wait({bot_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
                if stop_task in done:
                    if bot.placement is not None:
                        bot.placement.stop_claiming()
                    await bot.drain(settings.BOT_SHUTDOWN_GRACE_SECONDS)
                    logger.info("stopping: closing the gateway")
                    await bot.close()
                    # A shard still trying to connect retries forever, even after close(): cut it short.
                    await asyncio.wait({bot_task}, timeout=2)
                    bot_task.cancel()
                    if bot.placement is not None:  # the gateway is closed: the others may take over now
                        await bot.placement.leave()
                stop_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await bot_task
        finally:
            await usage_flush(final=True)
            await decisions_flush()  # the answer inspector's last rows (dropped if the database is away)
            if runner is not None:
                await runner.cleanup()
            try:
                if database_outage.active:
                    raise DatabaseError("the database failed moments ago")
                await sync_to_async(shards_mark_disconnected)(bot.own_shard_ids)
                logger.info("stopped; shards %s marked disconnected", bot.own_shard_ids)
            except (
                DatabaseError
            ) as exc:  # the status page reads a silent shard as disconnected within a minute
                logger.warning("stopped; shards not marked disconnected (%s)", type(exc).__name__)
            if bot.placement is not None:  # after the gateway is closed: the next owner never overlaps
                await bot.placement.leave()


def _placement(shard_count: int | None) -> ShardPlacement:
    heartbeat = float(getattr(settings, "BOT_SHARD_HEARTBEAT_SECONDS", 3.0))
    lease = float(getattr(settings, "BOT_SHARD_LEASE_SECONDS", 15.0))
    if heartbeat <= 0 or lease < 2 * heartbeat:
        # A lease must survive a late heartbeat, or a busy process would lose its shards to the others.
        raise CommandError(
            "BOT_SHARD_LEASE_SECONDS must be at least twice BOT_SHARD_HEARTBEAT_SECONDS (and both above 0)"
        )
    return ShardPlacement(shard_count=shard_count, heartbeat=heartbeat, lease=lease)
