"""``runbot --shards auto``: processes share the shards out through the database, take over those of a process
that dies or stops, and pace their IDENTIFYs together, against a fake Discord that enforces the IDENTIFY limit."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import aiohttp
import pytest

from botcore.models import ShardLease, ShardProcess, ShardStatus
from tests.fakes.discord_server import FakeDiscord
from tests.support import BotProcess, http_request, wait_until

pytestmark = pytest.mark.e2e

SHARDS = 6
MAX_CONCURRENCY = 2
IDENTIFY_WINDOW = 1.0  # the fake's: Discord's is 5 s
LEASE = 6.0
TARGET_ID = 515151515151515151
# A heartbeat a second and 6 s leases keep the test short (the defaults are 5 s and 15 s); the bots pace their
# IDENTIFYs a second apart per bucket (plus their margin), as they pace them 5 s apart for Discord.
AUTO = ("--shards", "auto")
ENV = {
    "BOT_SHARD_HEARTBEAT_SECONDS": "1",
    "BOT_SHARD_LEASE_SECONDS": str(LEASE),
    "BOT_IDENTIFY_DELAY_SECONDS": str(IDENTIFY_WINDOW),
    "TARGET_USER_ID": str(TARGET_ID),
}


@pytest.fixture
def fake():
    with FakeDiscord(
        heartbeat_interval_ms=500,
        recommended_shards=SHARDS,
        max_concurrency=MAX_CONCURRENCY,
        identify_interval=IDENTIFY_WINDOW,
    ) as server:
        yield server


@pytest.fixture
def guilds(fake: FakeDiscord) -> dict[int, dict[str, Any]]:
    """One guild on each shard."""
    return {n: fake.add_guild(name=f"Shard {n} guild", shard=(n, SHARDS)) for n in range(SHARDS)}


# ---------------------------------------------------------------- the fake's IDENTIFY limit
async def _identify(fake: FakeDiscord, shard_id: int) -> dict[str, Any]:
    """One raw gateway connection: HELLO, IDENTIFY, and the first answer (READY or an invalid session)."""
    async with aiohttp.ClientSession() as session, session.ws_connect(fake.ws_url) as ws:
        await ws.receive_json()  # HELLO
        payload = {"token": fake.token, "intents": 1, "shard": [shard_id, SHARDS], "properties": {}}
        await ws.send_json({"op": 2, "d": payload})
        return dict(await ws.receive_json())


def test_the_fake_refuses_an_identify_too_soon_in_its_bucket(fake):
    first = asyncio.run(_identify(fake, 0))
    other_bucket = asyncio.run(_identify(fake, 1))
    too_soon = asyncio.run(_identify(fake, 2))  # 2 % 2 == 0: shard 0's bucket, within the window
    assert first["t"] == "READY" and other_bucket["t"] == "READY"
    assert too_soon == {"op": 9, "d": False, "s": None, "t": None}
    assert fake.identifies_per_shard == {0: 1, 1: 1}
    assert [(i["shard"], i["reason"]) for i in fake.invalid_sessions] == [
        ([2, SHARDS], "identify rate limit")
    ]
    time.sleep(IDENTIFY_WINDOW)
    assert asyncio.run(_identify(fake, 2))["t"] == "READY"
    status, _, body = http_request(f"{fake.url}/api/v10/gateway/bot", {"Authorization": f"Bot {fake.token}"})
    assert status == 200
    gateway = json.loads(body)
    assert gateway["shards"] == SHARDS
    assert gateway["session_start_limit"]["max_concurrency"] == MAX_CONCURRENCY


# ---------------------------------------------------------------- three processes, one bot
def placement(bots: list[BotProcess]) -> dict[int, frozenset[int]] | None:
    """Each process's shards once every shard is READY and synced in exactly one of them (None until then)."""
    found: dict[int, frozenset[int]] = {}
    for bot in bots:
        bot.check_alive()
        body = bot.healthy()
        if body is None or not body["shards"]:
            return None
        found[bot.pid] = frozenset(int(shard) for shard in body["shards"])
    every = [shard for shards in found.values() for shard in shards]
    return found if sorted(every) == list(range(SHARDS)) else None


def wait_for_placement(bots: list[BotProcess], timeout: float, what: str) -> dict[int, frozenset[int]]:
    try:
        return wait_until(lambda: placement(bots), timeout, what, interval=0.1)
    except TimeoutError as exc:
        logs = "\n".join(f"--- runbot {bot.pid}:\n{bot.tail(2500)}" for bot in bots)
        raise TimeoutError(f"{exc}; health: {[bot.health() for bot in bots]}\n{logs}") from None


def ask_every_shard(fake: FakeDiscord, guilds: dict[int, dict[str, Any]], bots: list[BotProcess]) -> None:
    """A question in each shard's guild is answered once, by the process that leases that shard."""
    fake.reset_records()
    target = fake.add_user("target", user_id=TARGET_ID)
    asked = {
        shard: fake.send_user_message(
            int(guild["channels"][0]["id"]), f"who runs shard {shard}?", author=target
        )
        for shard, guild in guilds.items()
    }
    fake.wait_for_messages(SHARDS, timeout=30)
    time.sleep(0.5)  # a second answer from another process would arrive by now
    for shard, question in asked.items():
        replies = [m for m in fake.sent_messages if m["reply_to"] == int(question["id"])]
        assert len(replies) == 1, f"shard {shard}: {len(replies)} answers"
        holder = ShardLease.objects.get(shard_id=shard).pid
        line = f"answered message {question['id']} "
        answered_by = wait_until(
            lambda line=line: [bot.pid for bot in bots if line in bot.log()], 5, f"shard {shard}'s log line"
        )
        assert answered_by == [holder], f"shard {shard} is leased by {holder}, answered by {answered_by}"
        assert ShardStatus.objects.get(shard_id=shard).pid == holder


@pytest.mark.django_db(transaction=True)
def test_three_processes_share_the_shards_and_take_over_from_one_that_dies(fake, guilds):
    with contextlib.ExitStack() as stack:
        bots = [stack.enter_context(BotProcess(fake, *AUTO, **ENV)) for _ in range(3)]
        placed = wait_for_placement(bots, 90, "every shard READY in exactly one process")
        assert sorted(len(shards) for shards in placed.values()) == [2, 2, 2], placed
        assert fake.identifies_per_shard == dict.fromkeys(range(SHARDS), 1), "each shard READY once"
        assert fake.invalid_sessions == []
        ask_every_shard(fake, guilds, bots)

        victim, *survivors = bots
        orphaned = placed[victim.pid]
        assert victim.popen is not None
        victim.popen.kill()
        killed_at = time.monotonic()
        placed = wait_for_placement(survivors, 30, "the killed process's shards READY elsewhere")
        took = time.monotonic() - killed_at
        assert sorted(len(shards) for shards in placed.values()) == [3, 3], placed
        assert took > LEASE - 1.5, "taken over only once the leases ran out"
        assert fake.identifies_per_shard == {n: 2 if n in orphaned else 1 for n in range(SHARDS)}
        assert fake.invalid_sessions == [], "IDENTIFYs stayed within Discord's pace"
        ask_every_shard(fake, guilds, survivors)

        leaving, last = survivors
        assert leaving.stop() == 0
        assert "released 3 shard leases" in leaving.log()
        assert not ShardProcess.objects.filter(pid=leaving.pid).exists()
        released_at = time.monotonic()
        placed = wait_for_placement([last], 30, "the stopped process's shards READY in the last one")
        # Released at once: no wait for the leases to run out.
        assert time.monotonic() - released_at < LEASE
        assert fake.invalid_sessions == []
        ask_every_shard(fake, guilds, [last])


@pytest.mark.django_db(transaction=True)
def test_a_process_that_joins_later_gets_its_share(fake, guilds):
    with BotProcess(fake, *AUTO, **ENV) as first:
        placed = wait_for_placement([first], 60, "one process with every shard")
        assert placed == {first.pid: frozenset(range(SHARDS))}
        with BotProcess(fake, *AUTO, **ENV) as second:
            placed = wait_for_placement([first, second], 60, "the shards split over the two processes")
            assert sorted(len(shards) for shards in placed.values()) == [3, 3], placed
            moved = placed[second.pid]
            assert "handing shards" in first.log()
            assert fake.identifies_per_shard == {n: 2 if n in moved else 1 for n in range(SHARDS)}
            assert fake.invalid_sessions == []
            ask_every_shard(fake, guilds, [first, second])
