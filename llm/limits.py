"""Spend and rate limits: a daily USD budget and each user's messages per minute and per day.

Exact under bursts and across processes: before the provider is called, the gate takes a *reservation* in one
database transaction that (1) serialises the guild's reservations (a PostgreSQL advisory lock; on SQLite the
``BEGIN IMMEDIATE`` write lock does it), (2) counts what is already spent or reserved and the user's recent calls,
and (3) writes the question's usage row as ``pending``, holding the call's maximum cost (prompt tokens plus
``max_tokens`` at the model's price). The end of the answer replaces the reservation by the real figures (or by
nothing, for a call that failed). So N concurrent messages under a limit of K are answered exactly K times, and a
guild spends at most its budget plus one request's maximum cost.

Direct messages have no guild: they share instance-wide limits (``DM_*`` settings), kept the same way.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Min, Sum
from django.utils import timezone

from llm.models import Usage
from llm.usage import CALL_OUTCOMES, start_of_day

Outcome = Usage.Outcome
# pg_advisory_xact_lock(key1, key2): key1 names this use, key2 is the guild (0 for direct messages).
_LOCK_CLASS = 0x50A7


@dataclass(frozen=True)
class Limits:
    daily_budget_usd: Decimal | None
    per_minute: int | None
    per_day: int | None

    @property
    def any(self) -> bool:
        return self.daily_budget_usd is not None or bool(self.per_minute) or bool(self.per_day)


@dataclass(frozen=True)
class Refusal:
    outcome: str  # Usage.Outcome.OVER_BUDGET or USER_LIMITED
    notice: str
    notice_key: tuple[object, ...]  # the notice is sent once per key
    notice_until: float  # monotonic time when a new notice may be sent for the same key


@dataclass(frozen=True)
class Reservation:
    usage_pk: int  # the pending usage row; the answer's end updates it
    max_cost_usd: Decimal


def _seconds_to_midnight() -> float:
    now = timezone.now()
    return (start_of_day(now) + timedelta(days=1) - now).total_seconds()


def _serialise(guild_pk: int | None) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_CLASS, guild_pk or 0])
    # SQLite: the transaction began with BEGIN IMMEDIATE (config/settings.py), which already excludes writers.


def _refusal(guild_pk: int | None, user_id: int | None, limits: Limits) -> Refusal | None:
    now = timezone.now()
    scope = Usage.objects.filter(guild=guild_pk)  # None: direct messages (guild IS NULL)
    in_guild = guild_pk is not None
    if limits.daily_budget_usd is not None:
        spent = scope.filter(created_at__gte=start_of_day(now)).aggregate(s=Sum("cost_usd"))["s"] or 0
        if spent >= limits.daily_budget_usd:
            return Refusal(
                Outcome.OVER_BUDGET,
                f"{'This server has used its' if in_guild else 'Direct messages to Parley have used their'} "
                f"daily AI budget (${limits.daily_budget_usd}). "
                "I'll be back tomorrow (UTC).",
                ("budget", guild_pk, user_id),
                time.monotonic() + _seconds_to_midnight(),
            )
    if user_id is None:  # an operator's playground call without a Discord account: the budget alone
        return None
    # Questions asked in Discord: an admin trying prompts in the playground does not use up their own allowance.
    calls = scope.filter(user_discord_id=user_id, outcome__in=CALL_OUTCOMES).exclude(
        source=Usage.Source.PLAYGROUND
    )
    if limits.per_minute:
        recent = calls.filter(created_at__gt=now - timedelta(minutes=1)).aggregate(
            n=Count("id"), first=Min("created_at")
        )
        if (recent["n"] or 0) >= limits.per_minute:
            wait = 60 - (now - recent["first"]).total_seconds()
            return Refusal(
                Outcome.USER_LIMITED,
                f"You're sending messages faster than {'this server' if in_guild else 'Parley'} allows "
                f"({limits.per_minute} a minute{'' if in_guild else ' in direct messages'}). "
                "Please wait a moment.",
                ("minute", guild_pk, user_id),
                time.monotonic() + max(wait, 0),
            )
    if limits.per_day and calls.filter(created_at__gte=start_of_day(now)).count() >= limits.per_day:
        return Refusal(
            Outcome.USER_LIMITED,
            f"You've reached {'this server' if in_guild else 'Parley'}'s limit of {limits.per_day} messages a day"
            f"{'' if in_guild else ' in direct messages'}. See you tomorrow (UTC).",
            ("day", guild_pk, user_id),
            time.monotonic() + _seconds_to_midnight(),
        )
    return None


def reserve(
    *, guild_pk: int | None, user_id: int | None, limits: Limits, fields: dict[str, Any], max_cost: Decimal
) -> Refusal | Reservation:
    """A refusal, or a reservation holding ``max_cost`` (``fields``: the usage row's columns), in one
    transaction (see the module docstring). Callers from async code go through ``config.probes.database_call``."""
    with transaction.atomic():
        _serialise(guild_pk)
        refusal = _refusal(guild_pk, user_id, limits)
        if refusal is not None:
            return refusal
        row = Usage.objects.create(**{**fields, "outcome": Outcome.PENDING, "cost_usd": max_cost})
    return Reservation(row.pk, max_cost)


class LimitGate:
    """The one gate in front of every model call: chat, ``/ask``, direct messages and the playground.

    Its only memory is which refusal notices were already sent (one notice per user and window, not one per
    message), and a lock that keeps this process's reservations in line; everything it counts is in the database.
    """

    def __init__(self) -> None:
        self._notified: dict[tuple[object, ...], float] = {}
        self._serial: asyncio.Lock | None = None

    @property
    def serial(self) -> asyncio.Lock:
        """Held around a reservation and its retries: reservations share the database thread in any case."""
        if self._serial is None:
            self._serial = asyncio.Lock()
        return self._serial

    def should_notify(self, refusal: Refusal) -> bool:
        """True the first time a refusal is seen until its window ends: the notice is sent once, not per message."""
        now = time.monotonic()
        if self._notified.get(refusal.notice_key, 0) > now:
            return False
        if len(self._notified) > 10_000:  # forget the windows that have ended
            self._notified = {key: until for key, until in self._notified.items() if until > now}
        self._notified[refusal.notice_key] = refusal.notice_until
        return True


# A reservation still pending after this long belongs to an answer that can no longer end: its process was killed.
STALE_RESERVATION = timedelta(minutes=15)


def reservations_settle_stale() -> int:
    """Mark reservations whose process died (SIGKILL, out of memory) as interrupted. They keep the maximum cost
    they held: nobody knows what the provider billed, and the budget must not be overrun on a guess."""
    cutoff = timezone.now() - STALE_RESERVATION
    return Usage.objects.filter(outcome=Outcome.PENDING, created_at__lt=cutoff).update(
        outcome=Outcome.INTERRUPTED
    )
