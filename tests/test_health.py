"""GET /api/v1/health runs a real query and a real cache round trip."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import run_python

HEALTH_IN_CHILD = (
    "import django, json; django.setup();"
    "from django.test import Client;"
    "r = Client().get('/api/v1/health', HTTP_HOST='127.0.0.1');"
    "print(r.status_code); print(r.content.decode())"
)


def test_health_ok(client, db):
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["cache"] == "ok"
    assert body["version"]
    assert response["Cache-Control"].startswith("max-age=0")


def test_health_rejects_post(client, db):
    assert client.post("/api/v1/health").status_code == 405


def _health_in_child(tmp_path, **env: str) -> tuple[int, dict]:
    base = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    base.update(PARLEY_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="config.settings", **env)
    result = run_python(HEALTH_IN_CHILD, base)
    assert result.returncode == 0, result.stderr
    status, body = result.stdout.strip().splitlines()
    return int(status), json.loads(body)


@pytest.mark.parametrize(
    ("env", "failing"),
    [
        (
            {"DATABASE_URL": "postgres://postgres@127.0.0.1:1/nothing", "DATABASE_CONN_MAX_AGE": "0"},
            "database",
        ),
        ({"REDIS_URL": "redis://127.0.0.1:1/0"}, "cache"),
    ],
)
def test_health_503_names_the_failing_part(tmp_path, env, failing):
    status, body = _health_in_child(tmp_path, **env)
    assert status == 503
    assert body["status"] == "error"
    assert body[failing] == "error"
    assert body["failing"] == [failing]


def test_every_response_carries_a_request_id(client, db):
    response = client.get("/api/v1/health", HTTP_X_REQUEST_ID="abc-123")
    assert response["X-Request-ID"] == "abc-123"
    generated = client.get("/api/v1/health", HTTP_X_REQUEST_ID="bad id\nwith newline")["X-Request-ID"]
    assert generated != "bad id\nwith newline" and len(generated) == 32


def test_landing_page_links_to_login(client, db):
    response = client.get("/")
    assert response.status_code == 200
    assert b"Parley" in response.content
    assert b"/accounts/login/" in response.content
