"""Usage rows, budgets and per-user rate limits.

Every LLM call writes one ``Usage`` row. The bot writes it in the background so the reply is never delayed;
the playground writes it inline. Limits are checked before the provider is called.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import User
from llm.errors import LLMError
from llm.models import Usage
from llm.request import Reply

logger = logging.getLogger(__name__)
Outcome = Usage.Outcome
# Rows that stand for a provider call (refusals by our own limits cost nothing and do not count).
CALL_OUTCOMES = [
    Outcome.OK,
    Outcome.TIMEOUT,
    Outcome.RATE_LIMITED,
    Outcome.PROVIDER_ERROR,
    Outcome.BAD_REQUEST,
]


def _usage_fields(
    *,
    guild_pk: int | None,
    channel_id: int | None,
    user_id: int | None,
    model: str,
    source: str,
    reply: Reply | None = None,
    error: LLMError | None = None,
    outcome: str | None = None,
) -> dict[str, Any]:
    """One row for one call: the reply's tokens and cost, or the error's kind."""
    fields: dict[str, Any] = {
        "guild_id": guild_pk,
        "channel_id": channel_id,
        "user_discord_id": user_id,
        "source": source,
        "model": model,
        "outcome": outcome or (error.kind if error is not None else Outcome.OK),
    }
    if reply is not None:
        fields.update(
            model=reply.model,
            input_tokens=reply.input_tokens,
            output_tokens=reply.output_tokens,
            cost_usd=reply.cost_usd,
            latency_ms=reply.latency_ms,
            first_token_ms=reply.first_token_ms,
        )
    elif error is not None:
        fields.update(model=error.model or model, latency_ms=error.latency_ms or 0)
    return fields


def usage_record(**kwargs: Any) -> Usage:
    """Write one usage row now (the playground); see ``_usage_fields`` for the arguments."""
    return Usage.objects.create(**_usage_fields(**kwargs))


class _UsageBuffer:
    """The bot's usage rows, written in one INSERT every BOT_USAGE_FLUSH_SECONDS instead of one per message.

    A reply never waits for it. Shutdown (SIGTERM) writes what is pending through ``usage_flush``; a hard crash can
    lose at most the last interval's rows.
    """

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.task: asyncio.Task[None] | None = None

    def add(self, fields: dict[str, Any]) -> None:
        self.rows.append(fields)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self.rows:
            await asyncio.sleep(settings.BOT_USAGE_FLUSH_SECONDS)
            await self.flush()

    async def flush(self) -> None:
        rows, self.rows = self.rows, []
        if not rows:
            return
        try:
            await sync_to_async(_bulk_write)(rows)
        except Exception:
            logger.exception("could not write %d usage rows", len(rows))


def _bulk_write(rows: list[dict[str, Any]]) -> None:
    Usage.objects.bulk_create([Usage(**fields) for fields in rows])


_buffer = _UsageBuffer()


def usage_record_later(**kwargs: Any) -> None:
    """Queue a usage row (see ``usage_record``); written within BOT_USAGE_FLUSH_SECONDS."""
    _buffer.add(_usage_fields(**kwargs))


async def usage_flush() -> None:
    """Write the pending usage rows now (shutdown, tests)."""
    await _buffer.flush()


def start_of_day(now: datetime | None = None) -> datetime:
    now = now or timezone.now()
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def spent_today(guild_pk: int) -> Decimal:
    total = Usage.objects.filter(guild=guild_pk, created_at__gte=start_of_day()).aggregate(s=Sum("cost_usd"))[
        "s"
    ]
    return total or Decimal(0)


def calls_today(guild_pk: int, user_id: int) -> int:
    return Usage.objects.filter(
        guild=guild_pk, user_discord_id=user_id, created_at__gte=start_of_day(), outcome__in=CALL_OUTCOMES
    ).count()


def _totals(since: datetime) -> dict[str, Any]:
    window = Q(created_at__gte=since)
    return {
        "calls": Count("id", filter=window & Q(outcome__in=CALL_OUTCOMES)),
        "tokens": Sum(F("input_tokens") + F("output_tokens"), filter=window),
        "cost": Sum("cost_usd", filter=window),
        "refused": Count("id", filter=window & ~Q(outcome__in=CALL_OUTCOMES) & ~Q(outcome=Outcome.OK)),
    }


def usage_report(guild_pk: int, *, days: int = 30) -> dict[str, Any]:
    """The usage page's figures in five queries, whatever the number of rows: totals for today, 7 and 30 days,
    a row a day, top users and top models."""
    today = start_of_day()
    first_day = today - timedelta(days=days - 1)
    rows = Usage.objects.filter(guild=guild_pk, created_at__gte=first_day)
    windows = {"today": today, "week": today - timedelta(days=6), "month": first_day}
    flat = rows.aggregate(
        **{f"{name}_{key}": agg for name, since in windows.items() for key, agg in _totals(since).items()}
    )
    totals = {
        name: {
            key: flat[f"{name}_{key}"] or (Decimal(0) if key == "cost" else 0)
            for key in ("calls", "tokens", "cost", "refused")
        }
        for name in windows
    }
    per_day = {
        row["day"]: row
        for row in rows.annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(tokens=Sum(F("input_tokens") + F("output_tokens")), cost=Sum("cost_usd"))
    }
    daily = []
    for offset in range(days):
        day = (first_day + timedelta(days=offset)).date()
        found = per_day.get(day, {})
        daily.append(
            {"day": day, "tokens": found.get("tokens") or 0, "cost": found.get("cost") or Decimal(0)}
        )
    top = (
        rows.values("user_discord_id")
        .annotate(calls=Count("id"), tokens=Sum(F("input_tokens") + F("output_tokens")), cost=Sum("cost_usd"))
        .order_by("-cost", "-tokens")[:10]
    )
    top_users = list(top)
    names = dict(
        User.objects.filter(
            discord_id__in=[u["user_discord_id"] for u in top_users if u["user_discord_id"]]
        ).values_list("discord_id", "username")
    )
    for row in top_users:
        row["name"] = names.get(row["user_discord_id"])
    top_models = list(
        rows.values("model")
        .annotate(calls=Count("id"), tokens=Sum(F("input_tokens") + F("output_tokens")), cost=Sum("cost_usd"))
        .order_by("-cost", "-calls")[:10]
    )
    return {
        "today": totals["today"],
        "week": totals["week"],
        "month": totals["month"],
        "daily": daily,
        "top_users": top_users,
        "top_models": top_models,
    }
