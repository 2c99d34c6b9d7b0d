from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.utils import timezone

# A row not refreshed for this long belongs to a process that died without saying so.
STALE_AFTER = timedelta(minutes=1)


class ShardStatus(models.Model):
    """The state of one gateway shard, written by the ``runbot`` process that runs it."""

    class Status(models.TextChoices):
        CONNECTING = "CONNECTING", "Connecting"
        READY = "READY", "Ready"
        RESUMING = "RESUMING", "Resuming"
        DISCONNECTED = "DISCONNECTED", "Disconnected"

    shard_id = models.PositiveIntegerField(unique=True)
    shard_count = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.CONNECTING)
    latency_ms = models.FloatField(null=True, blank=True)
    guild_count = models.PositiveIntegerField(default=0)
    pid = models.PositiveIntegerField(null=True, blank=True)
    host = models.CharField(max_length=255, blank=True)
    connect_count = models.PositiveIntegerField(default=0)
    resume_count = models.PositiveIntegerField(default=0)
    last_heartbeat = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["shard_id"]
        verbose_name_plural = "shard statuses"

    def __str__(self) -> str:
        return f"Shard {self.shard_id}: {self.effective_status}"

    @property
    def is_stale(self) -> bool:
        return timezone.now() - self.updated_at > STALE_AFTER

    @property
    def effective_status(self) -> str:
        return self.Status.DISCONNECTED if self.is_stale else self.status


class ShardLatencySample(models.Model):
    """Latency history for the status page's sparkline; the bot keeps the last hour."""

    shard_id = models.PositiveIntegerField()
    latency_ms = models.FloatField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["shard_id", "created_at"], name="latency_shard_time")]

    def __str__(self) -> str:
        return f"Shard {self.shard_id}: {self.latency_ms:.0f} ms"
