"""The README's pictures: the main pages of a used server at a phone's width and a laptop's, light and dark, saved
as docs/screenshots/<page>-<phone|desktop>-<light|dark>.png. A file is written only when it is missing or with
``UPDATE_SCREENSHOTS=1``, so test runs leave git status clean; each page is still checked: its heading shows and
nothing scrolls sideways."""

from __future__ import annotations

import os
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

import audit
from accounts import discord_oauth
from accounts.models import User
from botcore.models import ShardLatencySample, ShardStatus
from guilds.models import Channel, Guild, Membership
from guilds.services import channel_override_set, settings_update
from llm.models import Usage
from tests.conftest import AVATAR, chromium, log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
WIDTHS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1366, "height": 900}}
SCHEMES = ["light", "dark"]
PROMPT = (
    "You are Parley, the assistant of the Weekend Raiders. Answer in a few friendly sentences, "
    "use code blocks for code, and say so when you are not sure."
)


@pytest.fixture
def used_guild(guild, alice, bob, carol, settings):
    """A server after a few weeks of use: channels, an override, named members, audit entries and usage."""
    settings.DISCORD_CLIENT_ID = "1234567890"
    guild.name = "Weekend Raiders"
    guild.member_count = 48
    guild.save()
    for i, name in enumerate(["announcements", "help", "off-topic", "raid-planning"]):
        Channel.objects.create(guild=guild, discord_id=222222222222222230 + i, name=name, position=i + 2)
    User.objects.filter(pk=alice.pk).update(global_name="Alice Liddell", avatar="abc")
    User.objects.filter(pk=bob.pk).update(global_name="Bob Marley", avatar="abc")
    for i, name in enumerate(["Dana", "Eli", "Farah"]):
        user = User.objects.create_user(
            username=name.lower(), discord_id=2000 + i, global_name=name, avatar="abc"
        )
        Membership.objects.create(user=user, guild=guild, role=Membership.Role.USER)
    settings_update(
        guild=guild,
        actor=bob,
        changes={
            "temperature": 0.4,
            "allowed_channel_ids": [222222222222222221, 222222222222222231],
            "daily_budget_usd": Decimal("0.05"),
        },
    )
    settings_update(guild=guild, actor=alice, changes={"system_prompt": PROMPT})
    channel_override_set(
        guild=guild, actor=bob, channel_id=222222222222222222, system_prompt="Answer with code, briefly."
    )
    audit.record(
        action="member.add", guild=guild, actor=alice, target="user:1002", changes={"role": [None, "ADMIN"]}
    )
    now = timezone.now()
    askers = [alice.discord_id, bob.discord_id, carol.discord_id, 2000, 2001, 2002]
    models = ["anthropic/claude-haiku-4-5", "openai/gpt-4o-mini"]
    for day in range(30):
        for n in range(2 + (day * 3) % 5):
            Usage.objects.create(
                guild=guild,
                user_discord_id=askers[(day + n) % len(askers)],
                model=models[n % 2],
                input_tokens=900 + 150 * ((day + n) % 6),
                output_tokens=250 + 40 * (n % 4),
                cost_usd=Decimal("0.0042") * (1 + n % 3),
                created_at=now - timedelta(days=day, hours=n),
            )
    other = Guild.objects.create_with_settings(discord_id=333, name="Book Club", is_active=False)
    Membership.objects.create(user=alice, guild=other, role=Membership.Role.ADMIN)
    discord_oauth.remember_guilds(
        alice.pk,
        [{"id": "901", "name": "Alice's Lab", "icon": None, "owner": True, "permissions": "0"}],
    )
    for shard_id in range(2):
        ShardStatus.objects.create(
            shard_id=shard_id,
            shard_count=2,
            status="READY",
            latency_ms=40.0 + 7 * shard_id,
            guild_count=1 - shard_id,
            host="bot-1.internal",
            pid=4242,
            connect_count=1,
            last_heartbeat=now,
        )
        for minute in range(0, 60, 5):
            ShardLatencySample.objects.create(
                shard_id=shard_id,
                latency_ms=38 + (minute * (3 + shard_id)) % 17,
                created_at=now - timedelta(minutes=minute),
            )
    return guild


def save(page, name: str) -> None:
    image = page.screenshot()  # the viewport only, so the files stay small
    path = SCREENSHOTS / f"{name}.png"
    if not path.exists() or os.environ.get("UPDATE_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path.write_bytes(image)


def test_the_main_pages_at_both_widths_in_both_themes(live_server, monkeypatch, used_guild, alice, staff):
    def on_guild(name: str) -> str:
        return reverse(name, args=[used_guild.discord_id])

    pages = [
        (alice, "servers", reverse("guilds:list"), "Your servers"),
        (alice, "settings", on_guild("guilds:settings"), "Settings"),
        (alice, "members", on_guild("guilds:members"), "Members"),
        (alice, "audit", on_guild("audit:log"), "Audit log"),
        (alice, "usage", on_guild("llm:usage"), "Usage"),
        (alice, "playground", on_guild("llm:playground"), "Playground"),
        (staff, "status", reverse("botcore:status"), "Shard status"),
    ]
    with chromium(monkeypatch) as context:
        context.route(
            "https://cdn.discordapp.com/**",
            lambda route: route.fulfill(body=AVATAR, content_type="image/png"),
        )
        page = context.new_page()
        current = None
        for user, name, path, heading in pages:
            if user != current:
                context.clear_cookies()
                log_in(page, live_server, user)
                current = user
            for width, viewport in WIDTHS.items():
                page.set_viewport_size(viewport)
                for scheme in SCHEMES:
                    page.emulate_media(color_scheme=scheme)
                    where = f"{name}-{width}-{scheme}"
                    assert page.goto(live_server.url + path).status == 200, where
                    assert page.locator("h1", has_text=heading).is_visible(), where
                    scroll, client = page.evaluate(
                        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
                    )
                    assert scroll <= client, f"{where} scrolls sideways: {scroll} > {client} px"
                    save(page, where)
