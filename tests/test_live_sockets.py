"""The live pages' sockets: the playground streams and stops, the shard monitor and the audit log push changes,
each web process reading the database once a tick for all its sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditLog
from botcore.models import ShardStatus
from guilds.models import Guild
from llm.models import Usage
from tests.conftest import open_socket

pytestmark = [pytest.mark.asyncio]


async def _until(communicator: Any, kind: str, timeout: float = 10) -> list[dict[str, Any]]:
    """Every message up to and including the first of type ``kind``."""
    seen = []
    while True:
        message = await communicator.receive_json_from(timeout=timeout)
        seen.append(message)
        if message["type"] == kind:
            return seen


async def _wait_for(predicate: Any, timeout: float = 10) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await sync_to_async(predicate)()
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.05)


# --- Playground -------------------------------------------------------------------------------------------------
@pytest.fixture
def fake_llm():
    from tests.fakes.llm_server import FakeLLM

    with FakeLLM(token_delay=0.05) as server:
        yield server


@pytest.fixture
def provider(settings, fake_llm):
    from llm import runner

    runner.start()  # the child imports litellm now, before the clock of the test starts
    settings.LLM_PROVIDERS = {
        **settings.LLM_PROVIDERS,
        "openai": {"api_key": "sk-test", "api_base": fake_llm.url},
    }
    return fake_llm


def playground(guild: Guild) -> str:
    return f"/ws/guilds/{guild.discord_id}/playground/"


async def test_playground_streams_tokens_before_the_answer_is_complete(
    transactional_db, bob, guild, provider
):
    words = ["one", "two", "three", "four", "five", "six", "seven", "eight"]
    provider.reply_with(" ".join(words))
    provider.enqueue("slow")
    communicator, connected, _ = await open_socket(playground(guild), bob)
    assert connected
    await communicator.send_json_to({"type": "run", "message": "count", "model": "openai/gpt-4o-mini"})
    messages = await _until(communicator, "done")
    tokens = [m["text"] for m in messages if m["type"] == "token"]
    assert len(tokens) >= 4, "the answer arrives in pieces, as the provider streams it"
    assert "".join(tokens).split() == words
    done = messages[-1]
    assert done["model_name"] and done["output_tokens"] == 8
    await communicator.disconnect()
    usage = await sync_to_async(Usage.objects.get)()
    assert usage.source == Usage.Source.PLAYGROUND and usage.outcome == Usage.Outcome.OK
    assert usage.model == "openai/gpt-4o-mini" and usage.cost_usd > 0
    assert provider.requests[0].stream


async def test_playground_streams_the_answer_and_sends_the_thinking_apart(
    transactional_db, bob, guild, provider
):
    provider.reply_with("Rayleigh scattering.")
    provider.reason_with("Short waves scatter more.")
    provider.enqueue("slow")
    communicator, connected, _ = await open_socket(playground(guild), bob)
    assert connected
    await communicator.send_json_to({"type": "run", "message": "why blue?", "model": "openai/gpt-4o-mini"})
    messages = await _until(communicator, "done")
    assert "".join(m["text"] for m in messages if m["type"] == "token") == "Rayleigh scattering."
    done = messages[-1]
    assert (done["reasoning"], done["reasoning_tokens"]) == ("Short waves scatter more.", 4)
    await communicator.disconnect()


async def test_stop_cancels_the_answer(transactional_db, bob, guild, provider):
    provider.token_delay = 0.3
    provider.reply_with(" ".join(f"word{i}" for i in range(50)))
    provider.enqueue("slow")
    communicator, connected, _ = await open_socket(playground(guild), bob)
    assert connected
    await communicator.send_json_to({"type": "run", "message": "go", "model": "openai/gpt-4o-mini"})
    first = await communicator.receive_json_from(timeout=10)
    assert first["type"] == "token"
    await communicator.send_json_to({"type": "stop"})
    messages = await _until(communicator, "stopped", timeout=5)
    assert sum(m["type"] == "token" for m in messages) < 10
    await communicator.disconnect()
    usage = await _wait_for(lambda: Usage.objects.filter(outcome=Usage.Outcome.INTERRUPTED).first())
    assert usage is not None and usage.source == Usage.Source.PLAYGROUND


async def test_the_offline_model_answers_on_the_socket(transactional_db, alice, guild):
    communicator, connected, _ = await open_socket(playground(guild), alice)
    assert connected
    await communicator.send_json_to(
        {
            "type": "run",
            "message": "hello socket",
            "model": "offline/parley-offline",
            "system_prompt": "Brief.",
        }
    )
    messages = await _until(communicator, "done")
    text = "".join(m["text"] for m in messages if m["type"] == "token")
    assert "hello socket" in text
    await communicator.disconnect()
    assert await sync_to_async(Usage.objects.filter(source=Usage.Source.PLAYGROUND).count)() == 1


async def test_the_playground_socket_rejects_bad_input(transactional_db, bob, guild):
    communicator, _, _ = await open_socket(playground(guild), bob)
    await communicator.send_json_to({"type": "run", "message": "", "model": "nope/nothing"})
    reply = await communicator.receive_json_from(timeout=5)
    assert reply["type"] == "invalid" and {"message", "model"} <= set(reply["errors"])
    await communicator.disconnect()
    assert await sync_to_async(Usage.objects.count)() == 0


async def test_a_demoted_admin_cannot_run_on_an_open_socket(transactional_db, bob, guild):
    from guilds.models import Membership

    communicator, connected, _ = await open_socket(playground(guild), bob)
    assert connected
    await sync_to_async(Membership.objects.filter(user=bob).update)(role=Membership.Role.USER)
    await communicator.send_json_to({"type": "run", "message": "hi", "model": "offline/parley-offline"})
    assert (await communicator.receive_output(timeout=5))["type"] == "websocket.close"
    assert await sync_to_async(Usage.objects.count)() == 0


# --- Shard monitor ----------------------------------------------------------------------------------------------
@pytest.fixture
def fast_polls(monkeypatch):
    from audit.consumers import tail
    from botcore.consumers import shards

    monkeypatch.setattr(shards, "interval", 0.05)
    monkeypatch.setattr(tail, "interval", 0.05)


async def test_a_shard_change_is_pushed(transactional_db, staff, fast_polls):
    await sync_to_async(ShardStatus.objects.create)(
        shard_id=0, shard_count=1, status="CONNECTING", latency_ms=42.0, host="bot-a", pid=10
    )
    communicator, connected, _ = await open_socket("/ws/status/", staff)
    assert connected
    first = await communicator.receive_json_from(timeout=5)
    assert first["shards"][0]["status"] == "CONNECTING" and first["shards"][0]["process"] == "bot-a:10"
    await sync_to_async(ShardStatus.objects.filter(shard_id=0).update)(
        status="READY", latency_ms=55.0, updated_at=timezone.now()
    )
    pushed = await communicator.receive_json_from(timeout=5)
    assert pushed["shards"][0]["status"] == "READY" and pushed["shards"][0]["latency_ms"] == 55
    # Nothing changed since: nothing more is sent.
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_one_query_per_tick_whatever_the_number_of_sockets(transactional_db, staff, monkeypatch):
    from botcore.consumers import shards

    await sync_to_async(ShardStatus.objects.create)(shard_id=0, shard_count=1, status="READY")
    queries: list[int] = []
    read = shards.read

    def counted(watch: dict[Hashable, Any]) -> dict[Hashable, Any]:
        with CaptureQueriesContext(connection) as captured:
            result = read(watch)
        queries.append(len(captured))
        return result

    monkeypatch.setattr(shards, "read", counted)
    monkeypatch.setattr(shards, "interval", 3600)  # the ticks below are driven by hand
    sockets = [await open_socket("/ws/status/", staff) for _ in range(5)]
    assert all(connected for _, connected, _ in sockets)
    await sync_to_async(ShardStatus.objects.update)(status="RESUMING", updated_at=timezone.now())
    await shards.tick()
    for communicator, _, _ in sockets:
        messages = []
        while not await communicator.receive_nothing(timeout=0.1):
            messages.append(await communicator.receive_json_from())
        assert messages[-1]["shards"][0]["status"] == "RESUMING"
    assert queries == [1, 1], "the task's first tick and ours: one query each for five sockets"
    assert len(shards.sockets) == 5
    for communicator, _, _ in sockets:
        await communicator.disconnect()
    assert not shards.sockets


# --- Audit log tail ---------------------------------------------------------------------------------------------
async def test_new_audit_entries_are_pushed_to_the_guild_page(transactional_db, bob, guild, fast_polls):
    old = await sync_to_async(AuditLog.objects.create)(action="settings.update", guild=guild, changes={})
    other = await sync_to_async(Guild.objects.create_with_settings)(discord_id=2**41, name="Elsewhere")
    communicator, connected, _ = await open_socket(
        f"/ws/guilds/{guild.discord_id}/audit/?after={old.pk}", bob
    )
    assert connected
    await sync_to_async(AuditLog.objects.create)(action="member.add", guild=other, changes={})
    new = await sync_to_async(AuditLog.objects.create)(
        action="settings.update", guild=guild, changes={"temperature": [0.5, 0.9]}, actor=bob
    )
    pushed = await communicator.receive_json_from(timeout=5)
    assert [entry["id"] for entry in pushed["entries"]] == [new.pk], "only this guild's, only the new one"
    html = pushed["entries"][0]["html"]
    assert f'id="entry-{new.pk}"' in html and "Temperature" in html and "Revert" in html
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_the_tail_catches_up_from_the_page(transactional_db, bob, guild, fast_polls):
    """An entry written after the page was rendered but before its socket opened still arrives."""
    first = await sync_to_async(AuditLog.objects.create)(action="settings.update", guild=guild, changes={})
    second = await sync_to_async(AuditLog.objects.create)(action="member.add", guild=guild, changes={})
    communicator, _, _ = await open_socket(f"/ws/guilds/{guild.discord_id}/audit/?after={first.pk}", bob)
    pushed = await communicator.receive_json_from(timeout=5)
    assert [entry["id"] for entry in pushed["entries"]] == [second.pk]
    await communicator.disconnect()
