"""The live pages in a real Chromium against the production web server (gunicorn with uvicorn workers), real
WebSockets end to end: the playground's tokens arrive before the answer is complete, and a shard's change shows
without a reload (and sooner than the page's 5 s polling)."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from botcore.models import ShardStatus
from tests.conftest import chromium, log_in
from tests.support import WebProcess

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
WORDS = [f"word{i}" for i in range(12)]


@pytest.fixture
def fake_llm():
    from tests.fakes.llm_server import FakeLLM

    with FakeLLM(token_delay=0.25, default_behaviour="slow") as server:
        server.reply_with(" ".join(WORDS))
        yield server


@pytest.fixture
def web(fake_llm):
    # DEBUG serves the static files from the source tree (no collectstatic in tests).
    with WebProcess(DJANGO_DEBUG="true", OPENAI_API_KEY="sk-test", OPENAI_API_BASE=fake_llm.url) as server:
        server.wait_ready()
        yield server


@pytest.fixture
def page(web, monkeypatch):
    with chromium(monkeypatch) as context:
        context.route("https://cdn.discordapp.com/**", lambda route: route.fulfill(status=404))
        yield context.new_page()


def test_playground_tokens_arrive_before_the_answer_is_complete(page, web, bob, guild):
    log_in(page, web, bob)
    page.goto(f"{web.url}/dashboard/guilds/{guild.discord_id}/playground/")
    page.wait_for_selector("#playground-form[data-live=on]", timeout=10_000)
    page.fill("#id_message", "count for me")
    page.select_option("#id_model", "openai/gpt-4o-mini")
    page.click("#playground-form button[type=submit]")
    # The first call imports litellm in the worker: give it time, then the words come one by one.
    page.locator(".answer.streaming", has_text="word1").wait_for(timeout=30_000)  # (the CSP forbids eval)
    partial = page.text_content(".answer.streaming") or ""
    assert WORDS[-1] not in partial, "the first words show while the rest is still being written"
    assert page.is_visible("#playground-stop")
    page.wait_for_selector("#playground-result p.muted", timeout=15_000)
    assert (page.text_content(".answer.streaming") or "").split() == WORDS
    assert "tokens" in (page.text_content("#playground-result p.muted") or "")
    assert not page.is_visible("#playground-stop")


def test_a_shard_change_appears_without_a_reload(page, web, staff):
    ShardStatus.objects.create(shard_id=0, shard_count=1, status="CONNECTING", latency_ms=40.0, host="bot-a")
    log_in(page, web, staff)
    page.goto(f"{web.url}/dashboard/status")
    page.wait_for_selector("body[data-live-shards=on]", timeout=10_000)
    assert page.text_content('tr[data-shard="0"] [data-field="status"]').strip() == "CONNECTING"
    changed = time.monotonic()
    ShardStatus.objects.filter(shard_id=0).update(status="READY", latency_ms=77.0, updated_at=timezone.now())
    page.wait_for_selector('tr[data-shard="0"] .status-READY', timeout=4_000)
    assert time.monotonic() - changed < 4, "pushed, not the 5 s polling"
    assert page.text_content('tr[data-shard="0"] [data-field="latency"]').strip() == "77 ms"
