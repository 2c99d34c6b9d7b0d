"""The database and cache probes (config/probes.py) behind both /health endpoints and ``parley_doctor``: a server
that is down is reported as an error within a second, not after the pool's or the sockets' own timeouts."""

from __future__ import annotations

import json
import os
import time

import pytest

from config.probes import cache_probe, database_probe
from tests.support import run_python

# A closed port: the server is down.
DOWN_POSTGRES = "postgres://postgres@127.0.0.1:1/parley"
DOWN_REDIS = "redis://127.0.0.1:1/0"
# Generous: the probes' own timeouts are under half a second; this only catches waiting for a 2-5 s default.
QUICK = 3.0

PROBES_IN_CHILD = """
import asyncio, json, time, django
django.setup()
from types import SimpleNamespace
from aiohttp.test_utils import TestClient, TestServer
from django.test import Client
from botcore.health import health_app
from botcore.models import ShardStatus
from config.probes import cache_probe, database_probe

def timed(call):
    start = time.monotonic()
    result = call()
    return result, time.monotonic() - start

async def bot_health():
    bot = SimpleNamespace(own_shard_ids=[0], shard_states={0: ShardStatus.Status.READY}, synced_shards={0})
    async with TestClient(TestServer(health_app(bot))) as client:
        response = await client.get("/health")
        return response.status, await response.json()

database, database_s = timed(database_probe)
cache, cache_s = timed(cache_probe)
web, web_s = timed(lambda: Client().get("/api/v1/health", HTTP_HOST="127.0.0.1"))
(bot_status, bot_body), bot_s = timed(lambda: asyncio.run(bot_health()))
print(json.dumps({
    "database": [database.state, database.reason, database_s],
    "cache": [cache.state, cache.reason, cache_s],
    "web": [web.status_code, web.json(), web_s],
    "bot": [bot_status, bot_body, bot_s],
}))
"""


def probes_in_child(tmp_path, **env: str) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    base.update(PARLEY_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="config.settings", **env)
    result = run_python(PROBES_IN_CHILD, base)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("pool", ["true", "false"])
def test_a_down_database_is_an_error_within_a_second(tmp_path, pool):
    found = probes_in_child(tmp_path, DATABASE_URL=DOWN_POSTGRES, DATABASE_POOL=pool)
    state, reason, seconds = found["database"]
    assert state == "error"
    assert reason.startswith("PoolTimeout" if pool == "true" else "OperationalError")
    assert seconds < QUICK
    status, body, seconds = found["web"]
    assert (status, body["failing"]) == (503, ["database"])
    assert seconds < QUICK
    status, body, seconds = found["bot"]
    assert (status, body["database"], body["reasons"]) == (503, "error", ["database unreachable"])
    assert seconds < QUICK


def test_a_down_redis_is_an_error_within_a_second(tmp_path):
    found = probes_in_child(tmp_path, REDIS_URL=DOWN_REDIS)
    state, reason, seconds = found["cache"]
    assert state == "error"
    assert reason.startswith("ConnectionError")
    assert seconds < QUICK
    status, body, seconds = found["web"]
    assert (status, body["failing"]) == (503, ["cache"])
    assert seconds < QUICK
    # The bot keeps nothing in Redis: its health does not depend on it.
    assert found["bot"][0] == 200
    assert found["database"][0] == "ok"


def test_reachable_services_are_ok(db):
    assert database_probe().state == "ok"
    assert cache_probe().state == "ok"


def test_the_redis_probe_has_its_own_timeout(settings):
    settings.REDIS_URL = DOWN_REDIS
    start = time.monotonic()
    probe = cache_probe()
    assert probe.state == "error" and "127.0.0.1:1" in probe.reason
    assert time.monotonic() - start < QUICK
