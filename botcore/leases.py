"""Shard leases for ``runbot --shards auto``: the database decides which process runs which shard.

Every statement that hands a shard over is one conditional UPDATE whose row count says whether it won (``... WHERE
owner = '' OR expires_at < now``), so two processes can never both claim a shard, on SQLite as on PostgreSQL.
Times come from the database's clock (``Now()``): processes on different hosts compare the same clock.

The async side (which shards the bot starts and stops) is ``botcore/placement.py``.
"""

from __future__ import annotations

import math
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Count, DateTimeField, DurationField, ExpressionWrapper, Q, Value
from django.db.models.functions import Now

from botcore.models import ShardLease, ShardProcess

HOST = socket.gethostname()[:255]
# Any constant key: serialises the lease table's (re)creation between processes on PostgreSQL.
_PREPARE_LOCK = 0x5041524C  # "PARL"


def me() -> str:
    """This process's owner token (host, pid and a random part: a pid is reused after a restart)."""
    return f"{HOST[:60]}:{os.getpid()}:{secrets.token_hex(4)}"


def db_now_plus(seconds: float) -> ExpressionWrapper:
    """The database's now plus ``seconds``."""
    return ExpressionWrapper(
        Now() + Value(timedelta(seconds=seconds), output_field=DurationField()), output_field=DateTimeField()
    )


def _free() -> Q:
    return Q(owner="") | Q(expires_at__isnull=True) | Q(expires_at__lt=Now())


class ShardCountConflict(Exception):
    """Live processes lease another shard count than the one asked for."""

    def __init__(self, current: int) -> None:
        super().__init__(current)
        self.current = current


def leases_prepare(*, shard_count: int, insist: bool) -> int:
    """Make the lease table describe ``shard_count`` shards and return the count the processes use.

    While any process holds a live lease, its count wins: every process must agree on it, and a new recommendation
    from Discord waits until they all restart. ``insist`` (an explicit ``--shard-count``) raises
    ``ShardCountConflict`` instead of following the running ones.
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":  # SQLite's IMMEDIATE transactions already run one at a time
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_PREPARE_LOCK])
        counts = set(ShardLease.objects.values_list("shard_count", flat=True).distinct())
        rows = ShardLease.objects.count()
        if counts == {shard_count} and rows == shard_count:
            return shard_count
        live = ShardLease.objects.exclude(_free()).exists()
        if live:
            current = max(counts)
            if insist:
                raise ShardCountConflict(current)
            return current
        ShardLease.objects.all().delete()
        ShardLease.objects.bulk_create(
            [ShardLease(shard_id=i, shard_count=shard_count) for i in range(shard_count)]
        )
        return shard_count


@dataclass(frozen=True)
class Tick:
    """What one heartbeat found: the shards this process holds, those it should hand back, and why."""

    held: frozenset[int]
    release: frozenset[int]  # above the fair share while a settled process is below it: stop, then release
    live: int  # live processes, this one included
    quota: int  # the fair share: ceil(shards / live)
    settled: bool  # this process has made its first claim (or may make it now)
    settles_in: float = 0.0  # not settled: seconds until it may be, if nobody else joins meanwhile


def placement_tick(*, token: str, lease: float, settle: float, settled: bool, claim: bool = True) -> Tick:
    """One heartbeat: renew this process and its leases, then (``claim``) claim free shards up to the fair share
    and say which to hand back.

    Before its first claim a process waits until no process has joined for ``settle`` seconds, so processes started
    together see each other and split the shards once, instead of the first taking everything and handing it back.
    """
    ShardProcess.objects.filter(expires_at__lt=Now()).delete()
    renewed = ShardProcess.objects.filter(token=token).update(
        heartbeat_at=Now(), expires_at=db_now_plus(lease)
    )
    if not renewed:
        ShardProcess.objects.create(
            token=token,
            host=HOST,
            pid=os.getpid(),
            started_at=Now(),
            heartbeat_at=Now(),
            expires_at=db_now_plus(lease),
        )
    # Renewed even if expired: nobody has claimed it meanwhile, or the owner would not be us.
    ShardLease.objects.filter(owner=token).update(heartbeat_at=Now(), expires_at=db_now_plus(lease))
    held = set(ShardLease.objects.filter(owner=token).values_list("shard_id", flat=True))
    live = ShardProcess.objects.filter(expires_at__gte=Now())
    live_count = max(live.count(), 1)
    total = ShardLease.objects.count()
    quota = math.ceil(total / live_count)
    settles_in = 0.0
    if not settled:
        newest = live.order_by("-started_at").annotate(now=Now()).values_list("started_at", "now").first()
        settles_in = (newest[0] - newest[1]).total_seconds() + settle if newest else 0.0
        settled = settles_in <= 0
    if claim and settled and len(held) < quota:
        held |= _claim(token, lease, quota - len(held))
    release: set[int] = set()
    if claim and len(held) > quota:
        shortfall = _shortfall(quota, settle)
        release = set(sorted(held)[len(held) - min(len(held) - quota, shortfall) :]) if shortfall else set()
    return Tick(frozenset(held), frozenset(release), live_count, quota, settled, max(settles_in, 0.0))


def _claim(token: str, lease: float, wanted: int) -> set[int]:
    """Up to ``wanted`` free shards, lowest ids first; a shard another process wins meanwhile is skipped."""
    got: set[int] = set()
    for shard_id in list(ShardLease.objects.filter(_free()).values_list("shard_id", flat=True)):
        if len(got) >= wanted:
            break
        won = (
            ShardLease.objects.filter(_free(), shard_id=shard_id)
            .update(owner=token, host=HOST, pid=os.getpid(), acquired_at=Now(), heartbeat_at=Now(),
                    expires_at=db_now_plus(lease))
        )  # fmt: skip
        if won:
            got.add(shard_id)
    return got


def _shortfall(quota: int, settle: float) -> int:
    """How many shards settled live processes lack to reach the fair share (new ones claim once they settle, so
    handing shards back earlier would leave them unserved meanwhile)."""
    settled = ShardProcess.objects.filter(expires_at__gte=Now(), started_at__lte=db_now_plus(-settle))
    holding = dict(
        ShardLease.objects.exclude(_free())
        .values_list("owner")
        .annotate(n=Count("id"))
        .values_list("owner", "n")
    )
    return sum(max(quota - holding.get(token, 0), 0) for token in settled.values_list("token", flat=True))


def leases_release(*, token: str, shard_ids: list[int] | None = None) -> int:
    """Free this process's leases (``shard_ids``, or all of them): another process may claim them at once."""
    leases = ShardLease.objects.filter(owner=token)
    if shard_ids is not None:
        leases = leases.filter(shard_id__in=shard_ids)
    return leases.update(owner="", host="", pid=None, expires_at=Now())


def placement_leave(*, token: str) -> int:
    """A clean shutdown: release every lease and stop counting as a live process."""
    released = leases_release(token=token)
    ShardProcess.objects.filter(token=token).delete()
    return released
