"""The bot's /health endpoint: 200 when every shard of this process is ready and the database answers."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from aiohttp import web

from botcore.models import ShardStatus
from config.probes import database_probe, on_worker_thread

if TYPE_CHECKING:
    from botcore.bot import ParleyBot

logger = logging.getLogger(__name__)


def health_app(bot: ParleyBot) -> web.Application:
    async def health(request: web.Request) -> web.Response:
        shard_ids = bot.own_shard_ids
        states = bot.shard_states
        shards = {
            str(shard_id): states.get(shard_id, ShardStatus.Status.CONNECTING) for shard_id in shard_ids
        }
        reasons = [
            f"shard {sid} is {state}" for sid, state in shards.items() if state != ShardStatus.Status.READY
        ]
        # Ready means serving: the shard is connected and its guilds (hence their settings) are in the database.
        reasons += [
            f"shard {sid} is syncing its guilds"
            for sid in shard_ids
            if states.get(sid) == ShardStatus.Status.READY and sid not in bot.synced_shards
        ]
        # Not on the shared database thread: a message waiting there for the pool would hold the answer back.
        database = (await on_worker_thread(database_probe)).state
        if database != "ok":
            reasons.append("database unreachable")
        body = {
            "status": "error" if reasons else "ok",
            "shards": shards,
            "database": database,
            "reasons": reasons,
        }
        return web.Response(
            text=json.dumps(body), status=503 if reasons else 200, content_type="application/json"
        )

    app = web.Application()
    app.router.add_get("/health", health)
    return app


async def start_health_server(bot: ParleyBot, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(health_app(bot), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    logger.info("health endpoint on http://%s:%s/health", host, port)
    return runner
