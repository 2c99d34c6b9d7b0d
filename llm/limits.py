"""Spend and rate limits: a guild's daily USD budget and each user's messages per minute and per day.

Every answer passes :class:`LimitGate` before the provider is called (``llm.answering`` asks it); a refusal carries
the notice to show and whether it was already shown.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from asgiref.sync import sync_to_async
from django.utils import timezone

from llm.models import Usage
from llm.usage import calls_today, spent_today, start_of_day

Outcome = Usage.Outcome


@dataclass(frozen=True)
class Limits:
    daily_budget_usd: Decimal | None
    per_minute: int | None
    per_day: int | None


@dataclass(frozen=True)
class Refusal:
    outcome: str  # Usage.Outcome.OVER_BUDGET or USER_LIMITED
    notice: str
    notice_key: tuple[object, ...]  # the notice is sent once per key
    notice_until: float  # monotonic time when a new notice may be sent for the same key


def _seconds_to_midnight() -> float:
    now = timezone.now()
    return (start_of_day(now) + timedelta(days=1) - now).total_seconds()


class LimitGate:
    """Budget and rate-limit checks for one bot process.

    A guild lives on one shard, so one process sees all of its messages: a per-minute window in memory is exact.
    Daily counts and spend come from the database, so they survive restarts.
    """

    def __init__(self) -> None:
        self._recent: dict[tuple[int, int], deque[float]] = {}
        self._notified: dict[tuple[object, ...], float] = {}

    def _check_sync(self, guild_pk: int, user_id: int | None, limits: Limits) -> Refusal | None:
        if limits.daily_budget_usd is not None and spent_today(guild_pk) >= limits.daily_budget_usd:
            return Refusal(
                Outcome.OVER_BUDGET,
                f"This server has used its daily AI budget (${limits.daily_budget_usd}). I'll be back tomorrow (UTC).",
                ("budget", guild_pk),
                time.monotonic() + _seconds_to_midnight(),
            )
        if user_id is None:  # an operator's playground call without a Discord account: the budget alone
            return None
        if limits.per_minute:
            window = self._recent.setdefault((guild_pk, user_id), deque())
            cutoff = time.monotonic() - 60
            while window and window[0] < cutoff:
                window.popleft()
            if len(window) >= limits.per_minute:
                return Refusal(
                    Outcome.USER_LIMITED,
                    f"You're sending messages faster than this server allows ({limits.per_minute} a minute). "
                    "Please wait a moment.",
                    ("minute", guild_pk, user_id),
                    window[0] + 60,
                )
        if limits.per_day and calls_today(guild_pk, user_id) >= limits.per_day:
            return Refusal(
                Outcome.USER_LIMITED,
                f"You've reached this server's limit of {limits.per_day} messages a day. See you tomorrow (UTC).",
                ("day", guild_pk, user_id),
                time.monotonic() + _seconds_to_midnight(),
            )
        return None

    async def check(self, guild_pk: int, user_id: int | None, limits: Limits) -> Refusal | None:
        if limits.daily_budget_usd is None and not limits.per_minute and not limits.per_day:
            return None
        refusal = await sync_to_async(self._check_sync)(guild_pk, user_id, limits)
        if refusal is None and limits.per_minute and user_id is not None:
            self._recent.setdefault((guild_pk, user_id), deque()).append(time.monotonic())
        return refusal

    def should_notify(self, refusal: Refusal) -> bool:
        """True the first time a refusal is seen until its window ends: the notice is sent once, not per message."""
        now = time.monotonic()
        if self._notified.get(refusal.notice_key, 0) > now:
            return False
        self._notified[refusal.notice_key] = refusal.notice_until
        return True
