from __future__ import annotations

from typing import Any, NoReturn

from django.conf import settings
from django.db import models


class AuditLogImmutable(Exception):
    """Raised on any attempt to change or delete an audit entry: the log is append-only."""


class AuditLogQuerySet(models.QuerySet["AuditLog"]):
    def update(self, **kwargs: Any) -> NoReturn:
        raise AuditLogImmutable("audit log entries cannot be updated")

    def delete(self) -> NoReturn:
        raise AuditLogImmutable("audit log entries cannot be deleted")


class AuditLog(models.Model):
    """One thing that happened to a guild's configuration. Written only by ``audit.record``."""

    class ActorKind(models.TextChoices):
        USER = "user", "User"
        BOT = "bot", "Bot"
        SYSTEM = "system", "System"
        ADMIN = "admin", "Admin"

    guild = models.ForeignKey(
        "guilds.Guild", on_delete=models.PROTECT, null=True, blank=True, related_name="audit_logs"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="audit_logs"
    )
    actor_label = models.CharField(max_length=10, choices=ActorKind.choices, default=ActorKind.USER)
    action = models.CharField(max_length=50)
    target = models.CharField(max_length=200, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AuditLogQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Keyset pagination of one guild's log, newest first, optionally by action.
            models.Index(fields=["guild", "-id"], name="audit_guild_id_desc"),
            models.Index(fields=["guild", "action", "-id"], name="audit_guild_action"),
            models.Index(fields=["guild", "created_at"], name="audit_guild_created"),
        ]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_name} at {self.created_at:%Y-%m-%d %H:%M}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AuditLogImmutable("audit log entries cannot be updated")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AuditLogImmutable("audit log entries cannot be deleted")

    @property
    def actor_name(self) -> str:
        return str(self.actor) if self.actor_id else self.actor_label
