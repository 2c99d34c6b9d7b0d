"""The append-only audit log. ``audit.record(...)`` is the one way to write it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.models import Model

if TYPE_CHECKING:
    from accounts.models import User
    from audit.models import AuditLog


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
    return AuditLog.objects.create(
        action=action,
        guild=guild,  # type: ignore[misc]  # a guilds.Guild (see the signature)
        actor=actor,
        actor_label=label,
        target=target[:200],
        changes=changes or {},
        ip=ip,
    )


def record_many(entries: list[dict[str, Any]]) -> None:
    """Append many entries in one query (guild sync at start-up). Each dict holds ``record``'s fields, with
    ``guild_id``/``actor_id`` allowed in place of the objects."""
    from audit.models import AuditLog

    AuditLog.objects.bulk_create([AuditLog(**entry) for entry in entries])
