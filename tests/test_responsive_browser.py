"""Every dashboard page in a real Chromium at a phone's width (390 px) and a laptop's (1366 px), for an owner, a
user, an operator and a visitor: nothing scrolls sideways, and axe-core finds no serious or critical problem
(contrast, names, landmarks...), in the light theme and, on the laptop, the dark one. On a phone the server's
navigation is a closed menu above the page."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

import audit
from accounts.models import User
from botcore.models import ShardStatus
from guilds.models import Channel, Membership
from guilds.services import channel_override_set, settings_update
from llm.models import Usage
from tests.conftest import chromium, log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1366, "height": 900}
LONG_PROMPT = (
    "You are Parley, the helpful assistant of the Weekend Raiders. " * 12 + "https://example.com/" + "x" * 90
)


@pytest.fixture
def busy_guild(guild, alice, bob, carol):
    """Long names and values, several members, overrides, audit entries, usage and a shard: what overflows."""
    guild.name = "The Extremely Long Server Name Of The Weekend Raiders Guild"
    guild.save()
    for i in range(6):
        Channel.objects.create(
            guild=guild, discord_id=222222222222222230 + i, name=f"channel-with-a-long-name-{i}"
        )
    user = User.objects.create_user(
        username="long",
        discord_id=123456789012345678,
        global_name="Maximiliana Bartholomew-Featherstonehaugh",
    )
    Membership.objects.create(user=user, guild=guild, role=Membership.Role.USER)
    settings_update(guild=guild, actor=bob, changes={"system_prompt": LONG_PROMPT, "temperature": 0.4})
    channel_override_set(guild=guild, actor=bob, channel_id=222222222222222230, system_prompt=LONG_PROMPT)
    audit.record(
        action="member.add",
        guild=guild,
        actor=alice,
        target="user:123456789012345678",
        changes={"role": [None, "USER"]},
    )
    now = timezone.now()
    for day in range(5):
        Usage.objects.create(
            guild=guild,
            user_discord_id=1003,
            model="anthropic/claude-haiku-4-5",
            input_tokens=1200,
            output_tokens=300,
            cost_usd=Decimal("0.0123"),
            created_at=now - timedelta(days=day),
        )
    ShardStatus.objects.create(
        shard_id=0,
        shard_count=1,
        status="READY",
        latency_ms=42.0,
        guild_count=1,
        host="bot-1.internal",
        pid=4242,
    )
    return guild


def guild_pages(guild, *names: str) -> list[str]:
    urls = {
        "settings": reverse("guilds:settings", args=[guild.discord_id]),
        "members": reverse("guilds:members", args=[guild.discord_id]),
        "audit": reverse("audit:log", args=[guild.discord_id]),
        "usage": reverse("llm:usage", args=[guild.discord_id]),
        "playground": reverse("llm:playground", args=[guild.discord_id]),
        "keys": reverse("llm:keys", args=[guild.discord_id]),
        "backup": reverse("guilds:backup", args=[guild.discord_id]),
    }
    return [urls[name] for name in names]


def visits(guild, alice, carol, staff) -> list[tuple[User | None, str, int]]:
    """(who, path, expected status) for every page a role may open, and the error pages they may meet."""
    everything = guild_pages(guild, "settings", "members", "audit", "usage", "playground", "keys", "backup")
    missing = reverse("guilds:settings", args=[999])
    return [
        (None, "/", 200),
        (None, reverse("account_login"), 200),
        (None, "/no/such/page/", 404),
        *[(alice, path, 200) for path in ["/", reverse("guilds:list"), *everything]],
        (alice, missing, 404),
        *[(carol, path, 200) for path in [reverse("guilds:list"), *guild_pages(guild, "settings")]],
        (carol, guild_pages(guild, "members")[0], 403),
        *[
            (staff, path, 200)
            for path in [reverse("guilds:list"), reverse("botcore:status"), reverse("llm:dm_usage")]
        ],
        *[(staff, path, 200) for path in everything],
    ]


def problems_on(page, axe) -> list[str]:
    found = []
    wide = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    if wide[0] > wide[1]:
        # What sticks out (visually hidden labels escape a scrolling box unless it is positioned).
        culprits = page.evaluate(
            "Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right > "
            "document.documentElement.clientWidth + 1).slice(0, 5).map(e => e.tagName + '.' + e.className)"
        )
        found.append(f"scrolls sideways: {wide[0]} > {wide[1]} px ({', '.join(culprits)})")
    for violation in axe.run(page).response["violations"]:
        if violation["impact"] in ("serious", "critical"):
            targets = [node["target"] for node in violation["nodes"]][:3]
            found.append(f"axe {violation['id']} ({violation['impact']}): {targets}")
    return found


@pytest.mark.parametrize(
    ("viewport", "schemes"), [(PHONE, ["light"]), (LAPTOP, ["light", "dark"])], ids=["390px", "1366px"]
)
def test_every_page_fits_the_screen_and_passes_axe(
    live_server, monkeypatch, busy_guild, alice, carol, staff, viewport, schemes
):
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    found: dict[str, list[str]] = {}
    with chromium(monkeypatch, viewport=viewport) as context:
        context.route("https://cdn.discordapp.com/**", lambda route: route.fulfill(status=404))
        page = context.new_page()
        current: User | None = None
        for user, path, status in visits(busy_guild, alice, carol, staff):
            if user != current:
                context.clear_cookies()
                if user is not None:
                    log_in(page, live_server, user)
                current = user
            for scheme in schemes:
                page.emulate_media(color_scheme=scheme)
                response = page.goto(live_server.url + path)
                who = user.username if user else "visitor"
                assert response.status == status, f"{who} {path}"
                if problems := problems_on(page, axe):
                    found[f"{who} {path} {scheme}"] = problems
    assert found == {}, "\n".join(f"{where}: {problems}" for where, problems in found.items())


def test_the_server_menu_is_closed_on_a_phone_and_open_on_a_laptop(live_server, monkeypatch, guild, alice):
    with chromium(monkeypatch, viewport=PHONE) as context:
        page = context.new_page()
        log_in(page, live_server, alice)
        page.goto(live_server.url + guild_pages(guild, "settings")[0])
        members = page.locator("nav.sidebar a", has_text="Members")
        assert not members.is_visible()
        assert page.locator("#id_system_prompt").is_visible()  # the page itself comes first
        page.click("nav.sidebar summary")
        assert members.is_visible()
        members.click()
        page.wait_for_url("**/members/")

        page.set_viewport_size(LAPTOP)
        assert page.locator("nav.sidebar summary").is_hidden()
        assert page.locator("nav.sidebar a", has_text="Audit log").is_visible()


def test_the_skip_link_is_the_first_stop_and_moves_to_the_content(live_server, monkeypatch, guild, alice):
    with chromium(monkeypatch, viewport=LAPTOP) as context:
        page = context.new_page()
        log_in(page, live_server, alice)
        page.goto(live_server.url + guild_pages(guild, "settings")[0])
        skip = page.locator("a.skip-link")
        assert skip.bounding_box()["y"] < 0  # off screen until focused
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        assert skip.bounding_box()["y"] >= 0
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "content"
