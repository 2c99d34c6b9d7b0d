"""A server's audit log as a file, CSV or JSON, streamed: entries are read a bounded batch at a time (keyset on the
id, like the page), so a log of any length costs the same memory and no long-lived database cursor.

The chunks come from async generators: under ASGI (production) Django streams them as they are made. (A synchronous
iterator would be read whole into memory in a worker thread first.) Each batch is read through ``sync_to_async``."""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import QuerySet
from django.http import StreamingHttpResponse

from audit.models import AuditLog

FORMATS = {"csv": "text/csv; charset=utf-8", "json": "application/json"}
BATCH = 500
COLUMNS = (
    "id",
    "created_at",
    "action",
    "actor",
    "actor_discord_id",
    "actor_kind",
    "target",
    "changes",
    "hash",
)
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection); a leading quote stops it.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _read(entries: QuerySet[AuditLog]) -> list[AuditLog]:
    return list(entries)


async def entries_in_batches(entries: QuerySet[AuditLog]) -> AsyncIterator[AuditLog]:
    """``entries`` (ordered newest first, by id, with their actors) read ``BATCH`` at a time."""
    before: int | None = None
    while True:
        page = entries if before is None else entries.filter(id__lt=before)
        batch = await sync_to_async(_read)(page[:BATCH])
        for entry in batch:
            yield entry
        if len(batch) < BATCH:
            return
        before = batch[-1].pk


def as_dict(entry: AuditLog) -> dict[str, Any]:
    actor = entry.actor
    return {
        "id": entry.pk,
        "created_at": entry.created_at.isoformat(),
        "action": entry.action,
        "actor": entry.actor_name,
        "actor_discord_id": actor.discord_id if actor is not None else None,
        "actor_kind": entry.actor_label,
        "target": entry.target,
        "changes": entry.changes,
        "hash": entry.hash,
    }


def safe_cell(value: Any) -> str:
    """A CSV cell a spreadsheet shows as text, never evaluates."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class _Line:
    """A file-like object for ``csv.writer`` that hands back each line instead of storing it."""

    def write(self, line: str) -> str:
        return line


async def csv_lines(entries: QuerySet[AuditLog]) -> AsyncIterator[str]:
    writer = csv.writer(_Line())
    yield writer.writerow(COLUMNS)
    async for entry in entries_in_batches(entries):
        row = as_dict(entry)
        yield writer.writerow([safe_cell(row[column]) for column in COLUMNS])


async def json_chunks(entries: QuerySet[AuditLog]) -> AsyncIterator[str]:
    """A JSON array, one entry a line."""
    yield "["
    separator = "\n"
    async for entry in entries_in_batches(entries):
        yield separator + json.dumps(as_dict(entry), cls=DjangoJSONEncoder, ensure_ascii=False)
        separator = ",\n"
    yield "\n]\n"


def response(entries: QuerySet[AuditLog], *, kind: str, name: str) -> StreamingHttpResponse:
    chunks = csv_lines(entries) if kind == "csv" else json_chunks(entries)
    streamed = StreamingHttpResponse(chunks, content_type=FORMATS[kind])
    streamed["Content-Disposition"] = f'attachment; filename="{name}.{kind}"'
    return streamed
