"""The dashboard in a real Chromium (Debian's, through Playwright) against a live server: an owner saves the
system prompt with HTMX and finds it in the audit log; a user sees the form read-only. (The README's screenshots
come from tests/test_screenshots.py.)"""

from __future__ import annotations

import pytest

import audit
from accounts import discord_oauth
from accounts.models import User
from guilds.models import Channel, Guild, GuildSettings, Membership
from guilds.services import channel_override_set, settings_update
from tests.conftest import AVATAR, chromium, log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def page(live_server, monkeypatch):
    with chromium(monkeypatch, viewport={"width": 1280, "height": 900}) as context:
        context.route(
            "https://cdn.discordapp.com/**",
            lambda route: route.fulfill(body=AVATAR, content_type="image/png"),
        )
        yield context.new_page()


@pytest.fixture
def lively_guild(guild, alice, bob, carol, settings):
    """A guild with some history, as a used dashboard has."""
    settings.DISCORD_CLIENT_ID = "1234567890"
    for i, name in enumerate(["announcements", "help", "off-topic"]):
        Channel.objects.create(guild=guild, discord_id=222222222222222230 + i, name=name, position=i + 2)
    for i, name in enumerate(["Dana", "Eli", "Farah"]):
        user = User.objects.create_user(
            username=name.lower(), discord_id=2000 + i, global_name=name, avatar="abc"
        )
        Membership.objects.create(user=user, guild=guild, role=Membership.Role.USER)
    settings_update(
        guild=guild, actor=bob, changes={"temperature": 0.4, "allowed_channel_ids": [222222222222222221]}
    )
    channel_override_set(
        guild=guild, actor=bob, channel_id=222222222222222222, system_prompt="Answer with code."
    )
    audit.record(
        action="member.add", guild=guild, actor=alice, target="user:1002", changes={"role": [None, "ADMIN"]}
    )
    other = Guild.objects.create_with_settings(discord_id=333, name="Book Club", is_active=False)
    Membership.objects.create(user=alice, guild=other, role=Membership.Role.ADMIN)
    discord_oauth.remember_guilds(
        alice.pk,
        [
            {"id": "901", "name": "Alice's Lab", "icon": None, "owner": True, "permissions": "0"},
            {"id": "902", "name": "Weekend Raiders", "icon": None, "owner": False, "permissions": str(0x20)},
        ],
    )
    return guild


def test_owner_saves_the_prompt_without_a_reload_and_finds_it_in_the_audit_log(
    page, live_server, lively_guild, alice
):
    log_in(page, live_server, alice)
    page.goto(f"{live_server.url}/dashboard/")
    assert page.locator("a.button", has_text="Add Parley").count() == 2
    page.click("text=Parley Test Server")
    page.wait_for_url(f"**/dashboard/guilds/{lively_guild.discord_id}/settings/")
    page.evaluate("window.__notReloaded = true")
    prompt = page.locator("#id_system_prompt")
    prompt.fill("You are Parley. Answer like a friendly pirate.")
    counter = page.locator('[data-counter-for="id_system_prompt"]')
    assert counter.inner_text() == str(len("You are Parley. Answer like a friendly pirate."))
    page.click("text=Save settings")
    page.locator("#settings-form .flash.ok", has_text="Saved").wait_for()
    assert page.evaluate("window.__notReloaded") is True  # swapped in place by htmx
    assert page.locator('input[name="version"]').get_attribute("value") == "4"  # 2 saves in the fixture
    row = GuildSettings.objects.get(guild=lively_guild)
    assert row.system_prompt == "You are Parley. Answer like a friendly pirate."

    page.click("nav.sidebar >> text=Audit log")
    page.wait_for_url("**/audit/")
    newest = page.locator("article.entry").first
    assert "Settings changed" in newest.inner_text() and "Alice" in newest.inner_text()
    assert "friendly pirate." in " ".join(newest.locator("ins").all_inner_texts())  # a word diff

    page.click("nav.sidebar >> text=Members")
    page.wait_for_url("**/members/")
    assert page.locator("table.members tbody tr").count() == 6


def test_a_user_sees_the_settings_read_only(page, live_server, guild, carol):
    log_in(page, live_server, carol)
    page.goto(f"{live_server.url}/dashboard/guilds/{guild.discord_id}/settings/")
    assert page.locator(".settings-summary").is_visible()  # a summary to read, not a greyed-out form
    assert page.locator("#id_system_prompt").count() == 0
    assert page.locator("text=Save settings").count() == 0
    assert page.locator("nav.sidebar >> text=Members").count() == 0
    assert page.locator("nav.sidebar >> text=Audit log").count() == 0
    assert page.locator("text=only owners and admins can change them").is_visible()


def test_a_stale_form_shows_the_error_in_place(page, live_server, guild, bob, alice):
    log_in(page, live_server, bob)
    page.goto(f"{live_server.url}/dashboard/guilds/{guild.discord_id}/settings/")
    page.evaluate("window.__notReloaded = true")
    settings_update(guild=guild, actor=alice, changes={"temperature": 1.1})  # alice saves meanwhile
    page.locator("#id_system_prompt").fill("Bob's prompt")
    page.click("text=Save settings")
    page.locator("#settings-form .flash.err", has_text="Someone else saved these settings").wait_for()
    assert page.evaluate("window.__notReloaded") is True  # the 422 was swapped in like a 200
    assert page.locator("#id_system_prompt").input_value() == "Bob's prompt"  # nothing typed is lost
    assert GuildSettings.objects.get(guild=guild).system_prompt != "Bob's prompt"


def test_a_cancelled_role_change_puts_the_select_back(page, live_server, guild, alice, carol):
    log_in(page, live_server, alice)
    page.goto(live_server.url + f"/dashboard/guilds/{guild.discord_id}/members/")
    select = page.locator(f"#member-{Membership.objects.get(user=carol).pk} select[name=role]")
    page.once("dialog", lambda dialog: dialog.dismiss())
    select.select_option("ADMIN")
    assert select.input_value() == "USER"  # what carol still is, not what was picked and cancelled
    page.once("dialog", lambda dialog: dialog.accept())
    select.select_option("ADMIN")
    page.locator("#members .messages", has_text="is now ADMIN").wait_for()
    assert Membership.objects.get(user=carol).role == "ADMIN"
