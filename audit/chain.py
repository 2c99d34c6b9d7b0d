"""The audit log's hash chain: each entry's ``hash`` covers its content and the previous entry's hash, so an entry
changed, removed or inserted after the fact shows up as a broken link (``manage.py audit_verify``).

The format is frozen: rows are hashed once, when written (and by migration 0003 for rows older than the chain),
and verified forever after. A change here needs a migration that rehashes every row.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from typing import Any

GENESIS = "0" * 64  # the ``prev_hash`` of the first entry
# Guards chain appends on PostgreSQL (pg_advisory_xact_lock): a constant that no other lock in Parley uses.
ADVISORY_LOCK_ID = 0x7061726C6579  # "parley"


def _canonical_value(value: Any) -> Any:
    """What the database gives back for a JSON value. PostgreSQL's jsonb keeps numbers as numerics, so a float
    with an integral value (``1e20``) can come back as an int: both are written as the int."""
    if isinstance(value, dict):
        return {str(k): _canonical_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical_value(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def canonical_time(value: datetime.datetime) -> str:
    return value.astimezone(datetime.UTC).isoformat(timespec="microseconds")


# What an entry's hash covers, besides the previous entry's hash.
HASHED_FIELDS = ("action", "guild_id", "actor_id", "actor_label", "target", "changes", "ip", "created_at")


def digest(entry: Any, prev_hash: str) -> str:
    """The hex sha256 of one entry's canonical content (JSON, sorted keys, no spaces) and the previous hash.

    ``entry`` is an AuditLog, or the historical model of a migration: only ``HASHED_FIELDS`` are read."""
    content = {name: getattr(entry, name) for name in HASHED_FIELDS}
    content["changes"] = _canonical_value(content["changes"])
    content["created_at"] = canonical_time(content["created_at"])
    content["prev_hash"] = prev_hash
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()
