from __future__ import annotations

from typing import Any, NoReturn

from django.conf import settings
from django.db import models
from django.utils import timezone

from audit import chain


class AuditLogImmutable(Exception):
    """Raised on any attempt to change or delete an audit entry: the log is append-only."""


class AuditLogQuerySet(models.QuerySet["AuditLog"]):
    def update(self, **kwargs: Any) -> NoReturn:
        raise AuditLogImmutable("audit log entries cannot be updated")

    def delete(self) -> NoReturn:
        raise AuditLogImmutable("audit log entries cannot be deleted")


class AuditLog(models.Model):
    """One thing that happened to a guild's configuration. Written only by ``audit.record``/``record_many``, which
    chain it: ``hash`` covers the entry's content and ``prev_hash``, the hash of the entry before it by id."""

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
    # Set by audit.record before hashing (auto_now_add would overwrite it on save, after the hash was taken).
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    prev_hash = models.CharField(max_length=64, blank=True, editable=False)
    hash = models.CharField(max_length=64, blank=True, editable=False)

    objects = AuditLogQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Keyset pagination of one guild's log, newest first, optionally by action.
            models.Index(fields=["guild", "-id"], name="audit_guild_id_desc"),
            models.Index(fields=["guild", "action", "-id"], name="audit_guild_action"),
            models.Index(fields=["guild", "created_at"], name="audit_guild_created"),
        ]
        constraints = [
            # Two writers that read the same last entry cannot both append after it: the chain never forks.
            models.UniqueConstraint(
                fields=["prev_hash"], condition=~models.Q(prev_hash=""), name="audit_chain_no_fork"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_name} at {self.created_at:%Y-%m-%d %H:%M}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AuditLogImmutable("audit log entries cannot be updated")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AuditLogImmutable("audit log entries cannot be deleted")

    def content_hash(self) -> str:
        """The hash this entry's content and ``prev_hash`` should have; ``hash`` holds the one taken when written."""
        return chain.digest(self, self.prev_hash)

    @property
    def actor_name(self) -> str:
        return str(self.actor) if self.actor_id else self.actor_label
