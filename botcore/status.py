"""Shard status rows: written by the bot on every state change and every few seconds, read by the status page."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.db import close_old_connections, transaction
from django.db.models import F
from django.utils import timezone

from botcore.models import ShardLatencySample, ShardStatus

SAMPLE_RETENTION = timedelta(hours=1)
HOST = socket.gethostname()


@dataclass(frozen=True)
class ShardReading:
    shard_id: int
    latency_ms: float | None
    guild_count: int


def shard_set_state(
    *, shard_id: int, shard_count: int, status: str, connected: bool = False, resumed: bool = False
) -> None:
    """Record a state change; ``connected``/``resumed`` also count the event."""
    now = timezone.now()
    with transaction.atomic():
        row, _ = ShardStatus.objects.select_for_update().get_or_create(
            shard_id=shard_id, defaults={"shard_count": shard_count}
        )
        counters = {}
        if connected:
            counters["connect_count"] = F("connect_count") + 1
        if resumed:
            counters["resume_count"] = F("resume_count") + 1
        ShardStatus.objects.filter(pk=row.pk).update(
            shard_count=shard_count,
            status=status,
            pid=os.getpid(),
            host=HOST[:255],
            updated_at=now,
            **counters,
        )


def shards_report(*, shard_count: int, readings: Sequence[ShardReading], statuses: dict[int, str]) -> None:
    """The periodic heartbeat: latency, guild counts, a latency sample each; prunes samples older than an hour."""
    close_old_connections()
    now = timezone.now()
    with transaction.atomic():
        for reading in readings:
            ShardStatus.objects.update_or_create(
                shard_id=reading.shard_id,
                defaults={
                    "shard_count": shard_count,
                    "status": statuses.get(reading.shard_id, ShardStatus.Status.CONNECTING),
                    "latency_ms": reading.latency_ms,
                    "guild_count": reading.guild_count,
                    "pid": os.getpid(),
                    "host": HOST[:255],
                    "last_heartbeat": now,
                    "updated_at": now,
                },
            )
        ShardLatencySample.objects.bulk_create(
            [
                ShardLatencySample(shard_id=r.shard_id, latency_ms=r.latency_ms, created_at=now)
                for r in readings
                if r.latency_ms is not None
            ]
        )
        ShardLatencySample.objects.filter(created_at__lt=now - SAMPLE_RETENTION).delete()


def shards_mark_disconnected(shard_ids: Sequence[int]) -> None:
    ShardStatus.objects.filter(shard_id__in=shard_ids).update(
        status=ShardStatus.Status.DISCONNECTED, latency_ms=None, updated_at=timezone.now()
    )
