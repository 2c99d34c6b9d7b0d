"""The audit log's live tail (ADMIN and above): entries written while the page is open appear at its top.

Each web process reads the log once a second for the guilds with an open page, in one query whatever the
number of pages (``guilds.sockets.Poller``), renders each new entry once with the page's own template, and hands
it to every socket of that guild. A socket starts from the newest entry its page showed (``?after=``), so an
entry written between the page and the socket is not lost.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Hashable
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.db.models import Max, Q
from django.template.loader import render_to_string

from audit.models import AuditLog
from audit.views import Words, entry_rows
from guilds.models import Guild, Membership
from guilds.sockets import Poller, guild_for_socket

TAIL_MAX = 200  # entries a tick; more (a burst, or a page left open for long) arrive on the next ticks
ID_RE = re.compile(r"[0-9]{1,18}")


def _render(guild: Guild, entries: list[AuditLog]) -> list[tuple[int, str]]:
    # Every socket here is ADMIN or above, who all see the Revert button; the page's script adds the CSRF token.
    context = {"guild": guild, "membership": Membership(guild=guild, role=Membership.Role.ADMIN)}
    return [
        (
            entry.pk,
            render_to_string(
                "audit/audit_log.html#entry", context | {"entry": e, "action": a, "target": t, "changes": c}
            ),
        )
        for entry, (e, a, t, c) in zip(entries, entry_rows(Words.of(guild, entries), entries), strict=True)
    ]


def _read(watch: dict[Hashable, Any]) -> dict[Hashable, Any]:
    """``{guild pk: newest id seen}`` -> ``{guild pk: [(id, html), ...]}`` for the guilds with new entries."""
    newer = Q()
    for guild_pk, after in watch.items():
        newer |= Q(guild_id=guild_pk, id__gt=after)
    entries = AuditLog.objects.filter(newer).select_related("actor", "guild").order_by("id")[:TAIL_MAX]
    by_guild: dict[int, list[AuditLog]] = defaultdict(list)
    for entry in entries:
        assert entry.guild_id is not None
        by_guild[entry.guild_id].append(entry)
    return {pk: _render(rows[0].guild, rows) for pk, rows in by_guild.items() if rows[0].guild}


tail = Poller(_read)


def _newest(guild: Guild) -> int:
    return AuditLog.objects.filter(guild=guild).aggregate(n=Max("id"))["n"] or 0


class AuditTailConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        access = await guild_for_socket(self, Membership.Role.ADMIN)
        if access is None:
            return
        guild, _ = access
        after = parse_qs(self.scope.get("query_string", b"").decode()).get("after", [""])[0]
        self.after = int(after) if ID_RE.fullmatch(after) else await database_sync_to_async(_newest)(guild)
        await self.accept()
        tail.join(self.push, guild.pk, self.after)

    async def push(self, entries: list[tuple[int, str]]) -> None:
        new = [(pk, html) for pk, html in entries if pk > self.after]
        if not new:
            return
        self.after = new[-1][0]
        tail.move(self.push, self.after)
        # Newest first, as the page lists them.
        await self.send_json(
            {"type": "entries", "entries": [{"id": pk, "html": h} for pk, h in reversed(new)]}
        )

    async def disconnect(self, code: int) -> None:
        tail.leave(self.push)
