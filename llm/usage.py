"""Usage rows: one per question a user asked, whatever became of it.

A row is written when the answer ends (answered, refused, failed). When limits apply, the limit gate
(``llm.limits``) first writes it as ``pending`` with the call's maximum cost, and the end of the answer updates it.
The bot writes rows in the background in batches, so a reply never waits for the database; the playground writes
inline. Rows are never dropped: a batch that cannot be written is kept and retried, and after
``BOT_USAGE_JOURNAL_AFTER`` failed attempts (or at shutdown) appended to a local journal (``USAGE_JOURNAL_PATH``,
JSON lines) that is written as soon as the database answers again, or at the next start. A row the database
refuses outright (not an outage: a value it rejects) is set aside in ``<journal>.bad`` for a person, so it does
not hold up the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, DataError, IntegrityError, ProgrammingError, transaction
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import User
from config.probes import database_outage
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
    Outcome.PENDING,
    Outcome.UNDELIVERED,
    Outcome.INTERRUPTED,
]


def usage_fields(
    *,
    guild_pk: int | None,
    channel_id: int | None,
    user_id: int | None,
    model: str,
    source: str,
    reply: Reply | None = None,
    error: LLMError | None = None,
    outcome: str | None = None,
    cost_usd: Decimal | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
) -> dict[str, Any]:
    """The one place a usage row's columns are built: the reply's tokens and cost, or the error's kind.

    ``cost_usd`` and the token counts, when given, are what was spent without a reply (a stream cut short)."""
    fields: dict[str, Any] = {
        "guild_id": guild_pk,
        "channel_id": channel_id,
        "user_discord_id": user_id,
        "source": source,
        "model": model,
        "outcome": outcome or (error.kind if error is not None else Outcome.OK),
        "created_at": timezone.now(),
        "cost_usd": Decimal(0),
    }
    if reply is not None:
        fields.update(
            model=reply.model,
            input_tokens=reply.input_tokens,
            output_tokens=reply.output_tokens,
            cost_usd=reply.cost_usd,
            latency_ms=reply.latency_ms,
            first_token_ms=reply.first_token_ms,
            reasoning_tokens=reply.reasoning_tokens,
        )
    elif error is not None:
        fields.update(model=error.model or model, latency_ms=error.latency_ms or 0)
    for name, value in (
        ("cost_usd", cost_usd),
        ("input_tokens", input_tokens),
        ("output_tokens", output_tokens),
    ):
        if value is not None:
            fields[name] = value
    return fields


def _write(rows: list[dict[str, Any]]) -> None:
    """New rows in one INSERT; rows with a ``pk`` (reserved by the limit gate) updated in place. A row may name
    its guild by Discord id (``guild_discord_id``) when the row's id was not known (the database was away)."""
    by_discord_id = {fields["guild_discord_id"] for fields in rows if "guild_discord_id" in fields}
    if by_discord_id:
        guilds = Usage._meta.get_field("guild").related_model._default_manager  # type: ignore[union-attr]
        pks = dict(guilds.filter(discord_id__in=by_discord_id).values_list("discord_id", "pk"))
        rows = [
            {
                **{k: v for k, v in fields.items() if k != "guild_discord_id"},
                "guild_id": pks.get(fields["guild_discord_id"]),
            }
            if "guild_discord_id" in fields
            else fields
            for fields in rows
        ]
    with transaction.atomic():
        Usage.objects.bulk_create([Usage(**fields) for fields in rows if "pk" not in fields])
        for fields in rows:
            if "pk" in fields:
                changes = {k: v for k, v in fields.items() if k not in {"pk", "created_at"}}
                Usage.objects.filter(pk=fields["pk"]).update(**changes)


def _write_each(rows: list[dict[str, Any]]) -> None:
    refused = []
    for fields in rows:
        try:
            _write([fields])
        except (DataError, IntegrityError, ProgrammingError):
            refused.append(fields)
    if refused:
        _set_aside([_encode(fields) for fields in refused], "rows the database refuses")


def usage_record(**kwargs: Any) -> None:
    """Write one usage row now (the playground); see ``usage_fields`` for the arguments."""
    usage_save(usage_fields(**kwargs))


def usage_save(fields: dict[str, Any]) -> None:
    """Write one row built by ``usage_fields`` now; with a ``pk`` (a reservation) it updates that row."""
    _write([fields])


# --- the bot's batches and the journal -------------------------------------------------------------------------
_journal_lock = threading.Lock()


def _journal_path() -> Path:
    return Path(settings.USAGE_JOURNAL_PATH)


def _encode(fields: dict[str, Any]) -> str:
    return json.dumps(
        {
            k: str(v) if isinstance(v, Decimal) else v.isoformat() if isinstance(v, datetime) else v
            for k, v in fields.items()
        }
    )


def _decode(line: str) -> dict[str, Any]:
    fields: dict[str, Any] = json.loads(line)
    if "cost_usd" in fields:
        fields["cost_usd"] = Decimal(fields["cost_usd"])
    if "created_at" in fields:
        fields["created_at"] = parse_datetime(fields["created_at"])
    return fields


def _append(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as journal:
        journal.writelines(line + "\n" for line in lines)


def _set_aside(lines: list[str], why: str) -> None:
    """Lines a person has to look at (``<journal>.bad``): kept, and out of the way of the others."""
    aside = _journal_path().with_suffix(".bad")
    _append(aside, lines)
    logger.error("usage: %d %s set aside in %s", len(lines), why, aside)


def _journal_append(rows: list[dict[str, Any]]) -> None:
    path = _journal_path()
    with _journal_lock:
        _append(path, [_encode(fields) for fields in rows])
    logger.error("usage: %d rows kept in the journal %s until the database is back", len(rows), path)


def _journal_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a journal file; a line that cannot be read (a write cut by a crash) is set aside in
    ``<journal>.bad`` for a person to look at, not lost and not in the way of the others."""
    rows, bad = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            rows.append(_decode(line))
        except (ValueError, TypeError, ArithmeticError):
            bad.append(line)
    if bad:
        _set_aside(bad, "unreadable journal lines")
    return rows


def _replaying_elsewhere(taken: Path) -> bool:
    """A ``*.<pid>.replaying`` file that another live process is writing right now."""
    pid = taken.suffixes[-2].lstrip(".") if len(taken.suffixes) >= 2 else ""
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except OSError:
        return False  # that process is gone: its leftover is ours to replay
    return True


def usage_replay_journal() -> int:
    """Write the rows a previous run (or an earlier outage) could not, then empty the journal. Returns how many.

    The journal is first renamed, atomically, so two bot processes sharing ``var/`` never replay it twice; if
    writing fails, its rows go back into the journal for next time. Files left by a replay that crashed midway
    (``*.replaying``) are taken too."""
    path = _journal_path()
    taken = path.with_name(f"{path.name}.{os.getpid()}.replaying")
    with _journal_lock:
        leftovers = [f for f in path.parent.glob(f"{path.name}.*.replaying") if not _replaying_elsewhere(f)]
        with contextlib.suppress(FileNotFoundError):
            path.rename(taken)
        files = [f for f in {*leftovers, taken} if f.exists()]
        if not files:
            return 0
        rows = [row for f in files for row in _journal_rows(f)]
        try:
            try:
                _write(rows)
            except (DataError, IntegrityError, ProgrammingError):
                _write_each(rows)  # a row the database refuses must not hold the journal back for ever
        except Exception:
            _append(path, [_encode(fields) for fields in rows])
            raise
        finally:
            for f in files:
                f.unlink(missing_ok=True)
    if rows:
        logger.info("usage: %d rows replayed from the journal", len(rows))
    return len(rows)


# While the journal holds rows, how often the buffer tries to write them (each try may wait for the pool).
JOURNAL_RETRY_SECONDS = 5.0


class _UsageBuffer:
    """The bot's usage rows, written in one batch every BOT_USAGE_FLUSH_SECONDS instead of one per message.

    A batch that fails stays in the buffer and is tried again; after BOT_USAGE_JOURNAL_AFTER failures in a row it
    goes to the journal, so memory does not grow while the database is away.
    """

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.task: asyncio.Task[None] | None = None
        self.failures = 0

    def add(self, fields: dict[str, Any]) -> None:
        self.rows.append(fields)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        # Runs while there is something to write: new rows, or a journal waiting for the database to come back.
        while self.rows or _journal_path().exists():
            await asyncio.sleep(settings.BOT_USAGE_FLUSH_SECONDS if self.rows else JOURNAL_RETRY_SECONDS)
            await self.flush()

    async def flush(self, *, final: bool = False) -> None:
        rows, self.rows = self.rows, []
        if not rows:  # only a journal waiting: tried again when the database is not known to be away
            if not database_outage.active:
                await self._replay()
            return
        try:
            if database_outage.active:  # at shutdown too: straight to the journal, no wait for the pool
                raise DatabaseError("the database failed moments ago")
            await sync_to_async(_write)(rows)
        except (DataError, IntegrityError, ProgrammingError) as exc:
            # Not an outage: some row is wrong. Write the others one by one and set the wrong ones aside.
            logger.error(
                "usage: a batch of %d rows was refused (%s); writing them one by one", len(rows), exc
            )
            await sync_to_async(_write_each)(rows)
            return
        except Exception as exc:
            if not database_outage.active:
                database_outage.begin()
            self.failures += 1
            logger.warning(
                "usage: could not write %d rows (%s), attempt %d",
                len(rows),
                type(exc).__name__,
                self.failures,
            )
            if final or self.failures >= settings.BOT_USAGE_JOURNAL_AFTER:
                await asyncio.to_thread(_journal_append, rows)
                self.failures = 0
            else:
                self.rows[:0] = rows  # first in, first written next time
            return
        self.failures = 0
        database_outage.end()
        await self._replay()

    async def _replay(self) -> None:
        if _journal_path().exists():  # the database answers: what waited in the journal goes in now
            try:
                await sync_to_async(usage_replay_journal)()
            except Exception as exc:
                logger.warning("usage: journal not replayed yet (%s)", type(exc).__name__)


_buffer = _UsageBuffer()


def usage_record_later(*, guild_discord_id: int | None = None, **kwargs: Any) -> None:
    """Queue a usage row (see ``usage_record``); written within BOT_USAGE_FLUSH_SECONDS. Without a ``guild_pk``,
    ``guild_discord_id`` names the server (the row's id is looked up when it is written)."""
    fields = usage_fields(**kwargs)
    if fields["guild_id"] is None and guild_discord_id is not None:
        fields["guild_discord_id"] = guild_discord_id
    usage_save_later(fields)


def usage_save_later(fields: dict[str, Any]) -> None:
    """Queue a row built by ``usage_fields`` (see ``usage_save``)."""
    _buffer.add(fields)


async def usage_flush(*, final: bool = False) -> None:
    """Write the pending usage rows now (tests). ``final`` (shutdown): what cannot be written goes to the journal."""
    await _buffer.flush(final=final)


def start_of_day(now: datetime | None = None) -> datetime:
    now = now or timezone.now()
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


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


def usage_report(guild_pk: int | None, *, days: int = 30) -> dict[str, Any]:
    """The usage page's figures (``guild_pk`` None: direct messages) in five queries, whatever the number of rows: totals for today, 7 and 30 days,
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
    ids = [u["user_discord_id"] for u in top_users if u["user_discord_id"]]
    users = {u.discord_id: u for u in User.objects.filter(discord_id__in=ids)} if ids else {}
    for row in top_users:
        row["user"] = users.get(row["user_discord_id"])
        row["name"] = row["user"].display_name if row["user"] else None
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
