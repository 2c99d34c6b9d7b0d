"""Every page under the Content-Security-Policy in a real Chromium: the browser reports no violation (no inline
script or style, no eval, nothing from another origin but Discord's CDN), and htmx still swaps."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import User
from botcore.models import ShardStatus
from guilds.models import Membership
from tests.conftest import chromium, log_in

# Injected by the browser itself (not subject to the page's policy): collects what the policy blocked.
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.effectiveDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`);
});
"""

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def page(live_server, monkeypatch):
    with chromium(monkeypatch) as context:
        context.route("https://cdn.discordapp.com/**", lambda route: route.fulfill(status=404))
        context.add_init_script(RECORD_VIOLATIONS)
        page = context.new_page()
        page.console_errors = []  # type: ignore[attr-defined]
        page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))  # type: ignore[attr-defined]
        yield page


@pytest.fixture
def operator(guild) -> User:
    user = User.objects.create_superuser(
        username="root", password="root-pass-123", email="root@example.com", discord_id=1001
    )
    Membership.objects.create(user=user, guild=guild, role=Membership.Role.OWNER)
    ShardStatus.objects.create(shard_id=0, shard_count=1, status="READY", latency_ms=42.0, guild_count=1)
    return user


def violations(page) -> list[str]:
    csp_console = [text for text in page.console_errors if "Content Security Policy" in text]
    return page.evaluate("window.__csp") + csp_console


def test_every_page_loads_without_a_policy_violation(page, live_server, guild, operator):
    log_in(page, live_server, operator)
    gid = guild.discord_id
    paths = [
        "/",
        reverse("guilds:list"),
        reverse("guilds:settings", args=[gid]),
        reverse("guilds:members", args=[gid]),
        reverse("audit:log", args=[gid]),
        reverse("llm:usage", args=[gid]),
        reverse("llm:playground", args=[gid]),
        reverse("llm:keys", args=[gid]),
        reverse("botcore:status"),
        "/admin/",
        "/admin/guilds/guild/",
        f"/admin/guilds/guild/{guild.pk}/change/",
        "/admin/accounts/user/add/",
    ]
    found = {}
    for path in paths:
        response = page.goto(live_server.url + path)
        assert response.status == 200, path
        assert "script-src 'self';" in response.headers["content-security-policy"] + ";", path
        page.wait_for_load_state("networkidle")
        if problems := violations(page):
            found[path] = problems
        page.console_errors.clear()
    for path in [
        "/no/such/page/",
        reverse("guilds:settings", args=[999]),
    ]:  # the error pages use the layout too
        response = page.goto(live_server.url + path)
        assert response.status == 404, path
        page.wait_for_load_state("networkidle")
        if problems := violations(page):
            found[path] = problems
    assert found == {}


def test_htmx_runs_under_the_policy(page, live_server, guild, operator):
    """The status page's search box swaps the guild list in with htmx: scripts load and run, nothing inline."""
    log_in(page, live_server, operator)
    page.goto(live_server.url + reverse("botcore:status"))
    assert page.evaluate("typeof htmx") == "object"
    assert page.evaluate("htmx.config.includeIndicatorStyles") is False
    assert page.evaluate("document.querySelectorAll('style').length") == 0
    page.locator("input[name=q]").press_sequentially("no such guild")  # keyup triggers the search
    page.wait_for_selector("#guild-list:has-text('No servers match')")
    assert violations(page) == []
