"""Read side of the shard monitor: status rows, latency history and guilds per shard."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count
from django.utils import timezone

from botcore.models import ShardLatencySample, ShardStatus
from guilds.models import Guild

SPARKLINE_POINTS = 60
SPARKLINE_WIDTH = 160
SPARKLINE_HEIGHT = 32


@dataclass(frozen=True)
class Sparkline:
    points: str
    maximum: float
    minimum: float


def sparkline(values: list[float]) -> Sparkline | None:
    """An SVG polyline (points attribute) scaled into the sparkline box, averaged down to at most 60 points."""
    if not values:
        return None
    step = max(1, -(-len(values) // SPARKLINE_POINTS))
    buckets = [values[i : i + step] for i in range(0, len(values), step)]
    averaged = [sum(bucket) / len(bucket) for bucket in buckets]
    low, high = min(averaged), max(averaged)
    span = (high - low) or 1.0
    x_step = SPARKLINE_WIDTH / max(1, len(averaged) - 1)
    coords = [
        f"{i * x_step:.1f},{SPARKLINE_HEIGHT - 2 - (value - low) / span * (SPARKLINE_HEIGHT - 4):.1f}"
        for i, value in enumerate(averaged)
    ]
    return Sparkline(points=" ".join(coords), maximum=max(values), minimum=min(values))


def latency_history(since: timedelta = timedelta(hours=1)) -> dict[int, list[float]]:
    history: dict[int, list[float]] = defaultdict(list)
    samples = (
        ShardLatencySample.objects.filter(created_at__gte=timezone.now() - since)
        .order_by("shard_id", "created_at")
        .values_list("shard_id", "latency_ms")
    )
    for shard_id, latency in samples:
        history[shard_id].append(latency)
    return history


def shard_overview() -> list[dict[str, object]]:
    """Every shard row with its effective status, active guild count (from the database) and sparkline."""
    history = latency_history()
    guilds = dict(
        Guild.objects.filter(is_active=True)
        .values("shard_id")
        .annotate(n=Count("id"))
        .values_list("shard_id", "n")
    )
    return [
        {
            "shard_id": row.shard_id,
            "shard_count": row.shard_count,
            "status": row.effective_status,
            "latency_ms": row.latency_ms if not row.is_stale else None,
            "guilds": guilds.get(row.shard_id, 0),
            "host": row.host,
            "pid": row.pid,
            "connects": row.connect_count,
            "resumes": row.resume_count,
            "last_heartbeat": row.last_heartbeat,
            "updated_at": row.updated_at,
            "sparkline": sparkline(history.get(row.shard_id, [])),
        }
        for row in ShardStatus.objects.all()
    ]


def shard_states() -> list[dict[str, object]]:
    """What the live shard monitor pushes: each shard's state, latency and counters, in one query (the
    sparklines and guild counts refresh with the page's own polling)."""
    return [
        {
            "shard_id": row.shard_id,
            "shard_count": row.shard_count,
            "status": row.effective_status,
            "latency_ms": round(row.latency_ms) if row.latency_ms is not None and not row.is_stale else None,
            "process": f"{row.host}:{row.pid}" if row.pid else row.host,
            "connects": row.connect_count,
            "resumes": row.resume_count,
            "last_heartbeat": row.last_heartbeat.isoformat() if row.last_heartbeat else None,
        }
        for row in ShardStatus.objects.order_by("shard_id")
    ]
