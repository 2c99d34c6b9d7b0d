"""The append-only, hash-chained audit log. ``audit.record(...)`` (or ``record_many``) is the one way to write it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import connections, router, transaction
from django.db.models import Model

if TYPE_CHECKING:
    from accounts.models import User
    from audit.models import AuditLog


def _chain(entries: list[AuditLog]) -> None:
    """Link ``entries`` after the newest stored entry and hash them. The caller holds a transaction: the lock
    taken here keeps any other writer from reading the same tail until it commits, so the chain cannot fork (the
    ``audit_chain_no_fork`` constraint refuses a fork that got past it)."""
    from audit import chain
    from audit.models import AuditLog

    connection = connections[router.db_for_write(AuditLog)]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [chain.ADVISORY_LOCK_ID])
    # On SQLite every transaction is BEGIN IMMEDIATE (config/settings.py): this one already holds the write lock.
    prev = AuditLog.objects.order_by("-id").values_list("hash", flat=True).first() or chain.GENESIS
    ip_field = AuditLog._meta.get_field("ip")
    for entry in entries:
        entry.ip = ip_field.get_prep_value(entry.ip)  # as stored (IPv6 normalized), so it hashes the same
        entry.prev_hash = prev
        entry.hash = prev = entry.content_hash()


def record(
    *,
    action: str,
    guild: Model | None = None,  # a guilds.Guild; audit knows guilds only by the model reference
    actor: User | None = None,
    actor_label: str | None = None,
    target: str = "",
    changes: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditLog:
    """Append one entry. ``changes`` is ``{field: [before, after]}``."""
    from audit.models import AuditLog

    label = actor_label or (AuditLog.ActorKind.USER if actor else AuditLog.ActorKind.SYSTEM)
    entry = AuditLog(
        action=action,
        guild=guild,  # type: ignore[misc]  # a guilds.Guild (see the signature)
        actor=actor,
        actor_label=label,
        target=target[:200],
        changes=changes or {},
        ip=ip,
    )
    with transaction.atomic(savepoint=False):  # joins the service's transaction; the chain lock lasts as long
        _chain([entry])
        entry.save(force_insert=True)
    return entry


def record_many(entries: list[dict[str, Any]]) -> None:
    """Append many entries in one query (guild sync at start-up). Each dict holds ``record``'s fields, with
    ``guild_id``/``actor_id`` allowed in place of the objects."""
    from audit.models import AuditLog

    if not entries:
        return
    rows = [AuditLog(**entry) for entry in entries]
    with transaction.atomic(savepoint=False):
        _chain(rows)
        AuditLog.objects.bulk_create(rows)  # ids follow the list's order, which is the chain's
