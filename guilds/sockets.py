"""What every WebSocket consumer shares: its page's access rule, and one database poller per process.

A socket is refused with a close code in the 4000s, as its page would answer: 4401 logged out, 4404 not a
member (a guild's existence is never revealed), 4403 a role too low or not an operator. The page itself keeps
working without the socket (htmx polling, full answers), so a refused or broken socket only loses the live
updates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.core.exceptions import PermissionDenied
from django.http import Http404

from guilds.dashboard import guild_for_user
from guilds.models import Guild, Membership

logger = logging.getLogger(__name__)

CLOSE_LOGGED_OUT = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404


def _user(consumer: AsyncWebsocketConsumer) -> Any:
    return consumer.scope.get("user")


async def guild_for_socket(
    consumer: AsyncWebsocketConsumer, min_role: str
) -> tuple[Guild, Membership] | None:
    """The guild of the socket's ``guild_id`` and the user's membership, as ``get_guild_for`` decides; None
    when the socket was refused (closed before it was accepted)."""
    user = _user(consumer)
    if user is None or not user.is_authenticated:
        await consumer.close(code=CLOSE_LOGGED_OUT)
        return None
    guild_id = int(consumer.scope["url_route"]["kwargs"]["guild_id"])
    try:
        return await database_sync_to_async(guild_for_user)(user, guild_id, min_role)
    except Http404:
        await consumer.close(code=CLOSE_NOT_FOUND)
    except PermissionDenied:
        await consumer.close(code=CLOSE_FORBIDDEN)
    return None


async def staff_socket(consumer: AsyncWebsocketConsumer) -> bool:
    """Operators only, like the pages behind ``staff_required``; a refused socket is closed."""
    user = _user(consumer)
    if user is None or not user.is_authenticated:
        await consumer.close(code=CLOSE_LOGGED_OUT)
        return False
    if not user.is_staff:
        await consumer.close(code=CLOSE_FORBIDDEN)
        return False
    return True


Send = Callable[[Any], Awaitable[None]]


class Poller:
    """One background task per process reads the database every ``interval`` seconds for every open socket of
    this process and hands each socket its part: one read per tick, whatever the number of browsers.

    ``read`` runs in a thread with ``{key: cursor}`` (for each key with an open socket, the lowest cursor of
    its sockets) and returns ``{key: payload}``; each socket of a key gets the payload and moves its own cursor.
    The task starts with the first socket and ends with the last, so a process without sockets reads nothing.
    It works the same whatever the channel layer: the fan-out is in-process, so several processes never send a
    browser the same thing twice.
    """

    def __init__(self, read: Callable[[dict[Hashable, Any]], dict[Hashable, Any]], interval: float = 1.0):
        self.read = read
        self.interval = interval
        self.sockets: dict[Send, list[Any]] = {}  # send -> [key, cursor]
        self.task: asyncio.Task[None] | None = None

    def join(self, send: Send, key: Hashable = None, cursor: Any = None) -> None:
        self.sockets[send] = [key, cursor]
        if self.task is None or self.task.done() or self.task.get_loop() is not asyncio.get_running_loop():
            self.task = asyncio.get_running_loop().create_task(self._run())

    def leave(self, send: Send) -> None:
        self.sockets.pop(send, None)
        if not self.sockets and self.task is not None:
            self.task.cancel()
            self.task = None

    def move(self, send: Send, cursor: Any) -> None:
        if send in self.sockets:
            self.sockets[send][1] = cursor

    def watched(self) -> dict[Hashable, Any]:
        watch: dict[Hashable, Any] = {}
        for key, cursor in self.sockets.values():
            if key not in watch or (cursor is not None and (watch[key] is None or cursor < watch[key])):
                watch[key] = cursor
        return watch

    async def tick(self) -> None:
        """One read and its fan-out (the loop below; tests call it directly)."""
        payloads = await database_sync_to_async(self.read)(self.watched())
        sends = [send(payloads[key]) for send, (key, _) in list(self.sockets.items()) if key in payloads]
        for result in await asyncio.gather(*sends, return_exceptions=True):
            if isinstance(result, Exception):
                logger.warning("live update not sent: %r", result)

    async def _run(self) -> None:
        while self.sockets:
            try:
                await self.tick()
            except Exception:
                logger.exception("live update poll failed")
            await asyncio.sleep(self.interval)
