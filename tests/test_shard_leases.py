"""Shard leases and IDENTIFY slots in the database (botcore/leases.py, botcore/identify.py), without Discord: each
"process" here is an owner token."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone

from botcore.identify import identify_slot_take
from botcore.leases import (
    ShardCountConflict,
    leases_prepare,
    leases_release,
    placement_leave,
    placement_tick,
)
from botcore.models import IdentifySlot, ShardLease, ShardProcess

pytestmark = pytest.mark.django_db

LEASE = 10.0


def tick(token: str, *, settled: bool = True, settle: float = 0.0):
    return placement_tick(token=token, lease=LEASE, settle=settle, settled=settled)


def owners() -> dict[int, str]:
    return dict(ShardLease.objects.values_list("shard_id", "owner"))


def die(token: str) -> None:
    """The process stops renewing: its membership and leases run out."""
    past = timezone.now() - timedelta(seconds=1)
    ShardProcess.objects.filter(token=token).update(expires_at=past)
    ShardLease.objects.filter(owner=token).update(expires_at=past)


def test_the_first_process_creates_the_leases_and_later_ones_follow_its_count():
    assert leases_prepare(shard_count=6, insist=False) == 6
    assert sorted(owners()) == list(range(6))
    tick("a")
    assert leases_prepare(shard_count=8, insist=False) == 6, "a live lease keeps the count"
    with pytest.raises(ShardCountConflict) as conflict:
        leases_prepare(shard_count=8, insist=True)
    assert conflict.value.current == 6
    placement_leave(token="a")
    assert leases_prepare(shard_count=8, insist=True) == 8, "no live lease: the count can change"
    assert ShardLease.objects.count() == 8


def test_processes_share_the_shards_fairly():
    leases_prepare(shard_count=6, insist=False)
    for token in "abc":  # all three register before any claims (as after the settle wait)
        tick(token, settled=False, settle=60)
    claimed = {token: tick(token).held for token in "abc"}
    assert [len(held) for held in claimed.values()] == [2, 2, 2]
    assert set().union(*claimed.values()) == set(range(6))


def test_a_claim_is_atomic():
    leases_prepare(shard_count=2, insist=False)
    tick("a", settled=False, settle=60)
    # "b" decided shard 0 was free, but "a" won it first: b's conditional UPDATE changes nothing.
    tick("a")
    won = ShardLease.objects.filter(shard_id=0, owner="").update(owner="b")
    assert won == 0
    assert owners()[0] == "a"


def test_a_dead_process_shards_go_to_the_live_ones():
    leases_prepare(shard_count=6, insist=False)
    for token in "abc":
        tick(token, settled=False, settle=60)
    for token in "abc":
        tick(token)
    dead = set(ShardLease.objects.filter(owner="c").values_list("shard_id", flat=True))
    die("c")
    after = {token: tick(token).held for token in "ab"}
    assert [len(held) for held in after.values()] == [3, 3]
    assert dead <= after["a"] | after["b"]
    assert not ShardProcess.objects.filter(token="c").exists(), "expired processes are forgotten"


def test_a_clean_stop_frees_the_shards_at_once():
    leases_prepare(shard_count=4, insist=False)
    for token in "ab":
        tick(token, settled=False, settle=60)
    for token in "ab":
        tick(token)
    assert placement_leave(token="b") == 2
    assert len(tick("a").held) == 4


def test_a_process_above_its_share_hands_shards_to_a_settled_newcomer_only():
    leases_prepare(shard_count=6, insist=False)
    assert len(tick("a").held) == 6
    fresh = tick("b", settled=False, settle=60)
    assert not fresh.settled and not fresh.held
    assert tick("a", settle=60).release == frozenset(), "b is still settling: nobody would serve them yet"
    # b has been around for longer than the settle time now.
    ShardProcess.objects.filter(token="b").update(started_at=F("started_at") - timedelta(seconds=120))
    handing = tick("a", settle=60)
    assert handing.quota == 3 and handing.release == {3, 4, 5}
    leases_release(token="a", shard_ids=sorted(handing.release))
    assert tick("b", settle=60).held == {3, 4, 5}
    assert tick("a", settle=60).release == frozenset()


def test_a_lease_taken_by_another_process_is_lost():
    leases_prepare(shard_count=2, insist=False)
    tick("a")
    die("a")
    assert tick("b").held == {0, 1}
    assert tick("a").held == frozenset(), "renewing does not take back what b holds"


def test_an_expired_lease_nobody_took_is_renewed():
    leases_prepare(shard_count=2, insist=False)
    tick("a")
    ShardLease.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert tick("a").held == {0, 1}
    assert ShardLease.objects.filter(expires_at__gt=timezone.now()).count() == 2


def test_identify_slots_space_identifies_per_bucket():
    assert identify_slot_take(bucket=0, spacing=5, shard_id=0) == 0.0
    wait = identify_slot_take(bucket=0, spacing=5, shard_id=2)
    assert 4 < wait <= 5, "the same bucket waits for the rest of the window"
    assert identify_slot_take(bucket=1, spacing=5, shard_id=1) == 0.0, "another bucket does not"
    IdentifySlot.objects.filter(bucket=0).update(next_at=timezone.now() - timedelta(seconds=1))
    assert identify_slot_take(bucket=0, spacing=5, shard_id=2) == 0.0
    assert IdentifySlot.objects.get(bucket=0).shard_id == 2


def test_after_an_outage_a_process_renews_before_it_claims():
    leases_prepare(shard_count=4, insist=False)
    for token in "ab":
        tick(token, settled=False, settle=60)
    for token in "ab":
        tick(token)
    die("a")
    die("b")  # the database was away longer than a lease: everything expired
    assert placement_tick(token="a", lease=LEASE, settle=0, settled=True, claim=False).held == {0, 1}
    assert tick("b").held == {2, 3}, "b renewed its own before a could claim them"


def test_the_lease_timings_are_settings(settings):
    # runbot reads them with defaults; the e2e tests shorten them through the environment.
    assert settings.BOT_SHARD_HEARTBEAT_SECONDS > 0
    assert settings.BOT_SHARD_LEASE_SECONDS >= 2 * settings.BOT_SHARD_HEARTBEAT_SECONDS
