"""The operators' shard monitor: /dashboard/status and GET /api/v1/shards."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from botcore.models import ShardLatencySample, ShardStatus
from botcore.monitor import sparkline
from guilds.models import Guild


@pytest.fixture
def shards(guild):
    now = timezone.now()
    ShardStatus.objects.create(
        shard_id=0, shard_count=2, status="READY", latency_ms=42.0, host="bot-a", pid=10
    )
    ShardStatus.objects.create(
        shard_id=1, shard_count=2, status="READY", latency_ms=50.0, updated_at=now - timedelta(minutes=5)
    )
    ShardLatencySample.objects.bulk_create(
        [
            ShardLatencySample(shard_id=0, latency_ms=40 + i % 7, created_at=now - timedelta(seconds=15 * i))
            for i in range(200)
        ]
    )
    Guild.objects.create_with_settings(discord_id=2**40, name="Other shard", shard_id=1)


def test_staff_sees_every_shard(client, staff, shards):
    client.force_login(staff)
    response = client.get("/dashboard/status")
    assert response.status_code == 200
    rows = {row["shard_id"]: row for row in response.context["shards"]}
    assert rows[0]["status"] == "READY" and rows[0]["guilds"] == 1
    assert rows[1]["status"] == "DISCONNECTED", "a row not refreshed for a minute reads as disconnected"
    assert b"<polyline" in response.content
    assert b"Parley Test Server" in response.content


def test_guild_search_is_an_htmx_partial(client, staff, shards):
    client.force_login(staff)
    response = client.get(
        "/dashboard/status", {"q": "other"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="guild-list"
    )
    assert response.status_code == 200
    assert b"Other shard" in response.content
    assert b"Parley Test Server" not in response.content
    assert b"<html" not in response.content


def test_refresh_returns_only_the_table(client, staff, shards):
    client.force_login(staff)
    response = client.get("/dashboard/status", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="shard-table")
    assert b'id="shard-table"' in response.content
    # Only the rows: the focusable scroll region around them stays in the page, and keyboard focus with it.
    assert response.content.decode().lstrip().startswith('<tbody id="shard-table"')
    assert b"tabindex" not in response.content
    assert b"<html" not in response.content


def test_query_count_does_not_grow_with_shards(client, staff, shards, django_assert_max_num_queries):
    client.force_login(staff)
    with django_assert_max_num_queries(8):
        client.get("/dashboard/status")
    ShardStatus.objects.bulk_create([ShardStatus(shard_id=n, shard_count=20) for n in range(2, 20)])
    with django_assert_max_num_queries(8):
        client.get("/dashboard/status")


@pytest.mark.parametrize("user_fixture", ["alice", "carol"])
def test_guild_members_cannot_see_it(client, request, user_fixture, shards):
    client.force_login(request.getfixturevalue(user_fixture))
    assert client.get("/dashboard/status").status_code == 403
    assert client.get("/api/v1/shards").status_code == 403


def test_anonymous_is_sent_to_login(client, shards):
    response = client.get("/dashboard/status")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    api = client.get("/api/v1/shards")
    assert api.status_code == 401 and api.json()["error"]


def test_api_lists_shards_and_their_guilds(client, staff, shards):
    client.force_login(staff)
    body = client.get("/api/v1/shards").json()
    by_id = {shard["shard_id"]: shard for shard in body["shards"]}
    assert by_id[0]["latency_ms"] == 42.0
    assert by_id[0]["guild_list"] == [{"id": "111111111111111111", "name": "Parley Test Server"}]
    assert by_id[1]["guild_list"][0]["name"] == "Other shard"
    assert by_id[1]["status"] == "DISCONNECTED"


def test_sparkline_scales_into_the_box():
    line = sparkline([10.0, 20.0, 30.0])
    assert line is not None
    assert line.points == "0.0,30.0 80.0,16.0 160.0,2.0"
    assert sparkline([]) is None
    assert len(sparkline([float(i) for i in range(500)]).points.split()) <= 60
