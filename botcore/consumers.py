"""The shard monitor's socket (operators only): shard rows pushed as they change.

Each web process reads the ShardStatus table once a second, in one task whatever the number of open pages
(``guilds.sockets.Poller``), and each socket sends its browser the rows when they differ from the last it sent.
The same holds with Redis: the bot does not publish on the channel layer; every process reads the table, which
keeps the database the only thing the bot and the dashboard share.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from botcore.monitor import shard_states
from guilds.sockets import Poller, staff_socket


def _read(watch: dict[Hashable, Any]) -> dict[Hashable, Any]:
    return {None: shard_states()}


shards = Poller(_read)


class StatusConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        if not await staff_socket(self):
            return
        self.last: Any = None
        await self.accept()
        shards.join(self.push)

    async def push(self, rows: list[dict[str, object]]) -> None:
        if rows != self.last:
            self.last = rows
            await self.send_json({"type": "shards", "shards": rows})

    async def disconnect(self, code: int) -> None:
        shards.leave(self.push)
