"""Feedback where the user looks, in a real Chromium: the settings page's sticky save bar knows about unsaved
edits, Save is busy while a request runs, a failed request shows a toast, the channel list can be searched, and
an expired session sends the user to log in and back with their edits restored (theirs only, for an hour)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.urls import reverse
from playwright.sync_api import expect

from guilds.models import Channel, GuildSettings
from tests.conftest import chromium, log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PROMPT = "#id_system_prompt"
SAVE = "#settings-form .savebar button[type=submit]"
STATE = "#settings-form [data-savebar-state]"


@pytest.fixture
def page(live_server, monkeypatch):
    with chromium(monkeypatch, viewport={"width": 1280, "height": 800}) as context:
        context.route("https://cdn.discordapp.com/**", lambda route: route.fulfill(status=404))
        yield context.new_page()


def open_settings(page, live_server, guild) -> None:
    page.goto(live_server.url + reverse("guilds:settings", args=[guild.discord_id]))


def leaving_is_stopped(page) -> bool:
    """Whether the page would ask before being left (its beforeunload handler cancels the event)."""
    return page.evaluate(
        "() => { const e = new Event('beforeunload', {cancelable: true}); window.dispatchEvent(e); "
        "return e.defaultPrevented; }"
    )


def test_the_save_bar_shows_unsaved_changes(page, live_server, guild, alice):
    log_in(page, live_server, alice)
    open_settings(page, live_server, guild)
    assert page.evaluate("document.body.classList.contains('has-savebar')")
    savebar = page.locator("#settings-form .savebar")
    assert savebar.evaluate("e => getComputedStyle(e).position") == "sticky"
    box = savebar.bounding_box()
    assert box["y"] + box["height"] <= 800  # in view at the bottom of the window, not below the long form
    assert page.locator(STATE).inner_text() == "All changes saved"
    assert page.locator(SAVE).is_disabled() and not leaving_is_stopped(page)

    original = page.locator(PROMPT).input_value()
    page.locator(PROMPT).fill("Answer in haiku.")
    assert page.locator(STATE).inner_text() == "Unsaved changes"
    assert page.locator(SAVE).is_enabled() and leaving_is_stopped(page)
    page.locator(PROMPT).fill(original)  # typed back: nothing to save
    assert page.locator(STATE).inner_text() == "All changes saved" and page.locator(SAVE).is_disabled()

    page.locator(PROMPT).fill("Answer in haiku.")
    page.locator(SAVE).click()
    page.locator("#toasts .toast.ok", has_text="Settings saved").wait_for()
    # The toast comes with the response, a moment before htmx swaps the saved form in: wait for the swap.
    expect(page.locator(SAVE)).to_be_disabled(timeout=5000)
    assert page.locator(STATE).inner_text() == "Saved"
    assert page.locator(SAVE).is_disabled() and not leaving_is_stopped(page)
    assert GuildSettings.objects.get(guild=guild).system_prompt == "Answer in haiku."


def test_save_is_busy_while_the_request_runs(page, live_server, guild, alice):
    log_in(page, live_server, alice)
    open_settings(page, live_server, guild)
    held = []
    page.route(
        "**/settings/",
        lambda route: held.append(route) if route.request.method == "POST" else route.continue_(),
    )
    page.locator(PROMPT).fill("Be quick.")
    page.locator(SAVE).click()
    page.wait_for_function("document.querySelector('#settings-form').classList.contains('htmx-request')")
    assert page.locator(SAVE).is_disabled()  # a second click cannot send it twice
    assert page.locator("#settings-form .savebar .htmx-indicator").is_visible()  # "Saving…"
    page.wait_for_function("true")  # let Playwright deliver the held request
    held[0].continue_()
    page.locator("#toasts .toast.ok", has_text="Settings saved").wait_for()
    assert GuildSettings.objects.get(guild=guild).system_prompt == "Be quick."


def test_a_server_error_shows_a_toast_and_keeps_the_edits(page, live_server, guild, alice):
    log_in(page, live_server, alice)
    open_settings(page, live_server, guild)
    page.route(
        "**/settings/",
        lambda route: (
            route.fulfill(status=500, body="Server Error")
            if route.request.method == "POST"
            else route.continue_()
        ),
    )
    page.locator(PROMPT).fill("Never saved.")
    page.locator(SAVE).click()
    error = page.locator("#toasts .toast.err", has_text="Something went wrong on our side")
    error.wait_for()
    assert error.is_visible() and "nothing was saved" in error.inner_text()
    assert page.locator(PROMPT).input_value() == "Never saved."  # nothing pasted over the form
    assert page.locator(SAVE).is_enabled() and page.locator(STATE).inner_text() == "Unsaved changes"
    error.locator("button.toast-close").click()
    assert page.locator("#toasts .toast").count() == 0


def test_a_lost_connection_shows_a_toast(page, live_server, guild, alice):
    log_in(page, live_server, alice)
    open_settings(page, live_server, guild)
    page.route("**/settings/", lambda r: r.abort() if r.request.method == "POST" else r.continue_())
    page.locator(PROMPT).fill("Offline.")
    page.locator(SAVE).click()
    page.locator("#toasts .toast.err", has_text="Could not reach Parley").wait_for()


def test_the_channel_list_can_be_searched(page, live_server, guild, alice):
    for i, name in enumerate(["help", "help-desk", "off-topic"]):
        Channel.objects.create(guild=guild, discord_id=222222222222222230 + i, name=name, position=i + 2)
    log_in(page, live_server, alice)
    open_settings(page, live_server, guild)
    tools = page.locator("[data-channel-tools]")
    assert tools.is_visible()
    boxes = page.locator("#id_allowed_channel_ids input[type=checkbox]")
    assert boxes.count() == 5
    tools.locator("input[type=search]").fill("#help")
    visible = page.locator("#id_allowed_channel_ids > div:visible")
    assert [t.strip() for t in visible.all_inner_texts()] == ["#help", "#help-desk"]
    assert "2 of 5 shown" in tools.inner_text()
    tools.locator("input[type=search]").press("Enter")  # filters; does not submit the form
    tools.get_by_role("button", name="Select all").click()
    checked = page.locator("#id_allowed_channel_ids input:checked")
    assert [checked.nth(i).get_attribute("value") for i in range(checked.count())] == [
        "222222222222222230",
        "222222222222222231",
    ]
    assert page.locator(STATE).inner_text() == "Unsaved changes"
    tools.locator("input[type=search]").fill("")
    assert page.locator("#id_allowed_channel_ids > div:visible").count() == 5
    tools.get_by_role("button", name="Clear").click()
    assert checked.count() == 0 and page.locator(STATE).inner_text() == "All changes saved"
    assert GuildSettings.objects.get(guild=guild).version == 1  # Enter saved nothing


def test_an_expired_session_keeps_the_edits_through_the_login(page, live_server, guild, alice):
    log_in(page, live_server, alice)
    open_settings(page, live_server, guild)
    settings_path = reverse("guilds:settings", args=[guild.discord_id])
    page.locator(PROMPT).fill("Kept across the login.")
    page.locator("#id_temperature").fill("1.2")
    page.context.clear_cookies(name=settings.SESSION_COOKIE_NAME)  # the session expired meanwhile

    page.locator(SAVE).click()  # no leave warning: this navigation is ours
    page.wait_for_url(f"**{settings.LOGIN_URL}?next=*")
    assert "Kept across the login." not in page.content()  # the login page, not pasted into a form
    next_page = parse_qs(urlsplit(page.url).query)["next"][0]
    assert next_page == settings_path
    # The login forms carry it on: after Discord's (or the operator's) login, allauth goes back there.
    assert page.locator(f'input[name="next"][value="{settings_path}"]').count() >= 1
    log_in(page, live_server, alice)  # logging in again (Discord's OAuth is tested elsewhere)
    page.goto(live_server.url + next_page)

    page.locator("#toasts .toast", has_text="Your unsaved changes were restored").wait_for()
    assert page.locator(PROMPT).input_value() == "Kept across the login."
    assert page.locator("#id_temperature").input_value() == "1.2"
    assert page.locator(STATE).inner_text() == "Unsaved changes" and page.locator(SAVE).is_enabled()
    assert GuildSettings.objects.get(guild=guild).system_prompt != "Kept across the login."

    page.locator(SAVE).click()
    page.locator("#toasts .toast.ok", has_text="Settings saved").wait_for()
    row = GuildSettings.objects.get(guild=guild)
    assert (row.system_prompt, row.temperature) == ("Kept across the login.", 1.2)
    page.reload()  # the draft went with the save: nothing is restored again
    assert page.locator(PROMPT).input_value() == "Kept across the login."
    assert page.locator("#toasts .toast").count() == 0


DRAFTS = "() => Object.keys(sessionStorage).filter((key) => key.startsWith('parley:draft:'))"


def test_a_draft_is_restored_only_for_its_user(page, live_server, guild, alice, bob):
    log_in(page, live_server, alice)
    open_settings(page, live_server, guild)
    page.locator(PROMPT).fill("Alice's unsaved prompt")
    page.context.clear_cookies(name=settings.SESSION_COOKIE_NAME)  # her session expired meanwhile
    page.locator(SAVE).click()
    page.wait_for_url(f"**{settings.LOGIN_URL}?next=*")
    settings_path = reverse("guilds:settings", args=[guild.discord_id])
    assert page.evaluate(DRAFTS) == [f"parley:draft:{alice.pk}:{settings_path}"]  # kept for her to log in

    log_in(page, live_server, bob)  # someone else logs in at this browser
    open_settings(page, live_server, guild)
    assert page.locator(PROMPT).input_value() != "Alice's unsaved prompt"
    assert page.locator("#toasts .toast").count() == 0
    assert page.evaluate(DRAFTS) == []  # and hers is gone


def test_drafts_expire_and_go_at_logout(page, live_server, guild, alice):
    log_in(page, live_server, alice)
    open_settings(page, live_server, guild)
    key = f"parley:draft:{alice.pk}:" + reverse("guilds:settings", args=[guild.discord_id])
    put = (
        "([key, user, age]) => sessionStorage.setItem(key, JSON.stringify({form: 'settings-form', user, "
        "saved: Date.now() - age, values: [['system_prompt', 'Old draft']]}))"
    )
    page.evaluate(put, [key, str(alice.pk), 2 * 60 * 60 * 1000])  # two hours old
    page.reload()
    assert page.locator(PROMPT).input_value() != "Old draft" and page.evaluate(DRAFTS) == []

    page.evaluate(put, [key, str(alice.pk), 0])
    page.get_by_role("button", name="Log out").click()
    page.wait_for_load_state()
    assert page.evaluate(DRAFTS) == []


def test_a_stale_edit_can_keep_my_changes(page, live_server, guild, alice, bob):
    from guilds.services import settings_update

    log_in(page, live_server, bob)
    open_settings(page, live_server, guild)
    settings_update(guild=guild, actor=alice, changes={"temperature": 1.1})  # alice saves meanwhile
    page.locator(PROMPT).fill("Bob's prompt")
    page.locator(SAVE).click()
    page.locator("#toasts .toast.warn", has_text="someone else changed").wait_for()
    stale = page.locator("#stale-changes")
    assert "Saved meanwhile by Alice" in stale.inner_text()
    assert page.locator(".savebar").get_by_text("Not saved: someone else changed").is_visible()
    assert page.locator("#id_temperature").input_value() == "1.1"  # theirs, which bob did not touch
    page.locator(".savebar").get_by_role("button", name="Keep my changes").click()
    page.locator("#toasts .toast.ok", has_text="Settings saved").wait_for()
    row = GuildSettings.objects.get(guild=guild)
    assert (row.system_prompt, row.temperature) == ("Bob's prompt", 1.1)


def test_a_csrf_refusal_asks_for_a_reload(page, live_server, guild, alice):
    log_in(page, live_server, alice)
    open_settings(page, live_server, guild)
    page.context.clear_cookies(name=settings.CSRF_COOKIE_NAME)  # the page's token no longer matches
    page.locator(PROMPT).fill("Refused.")
    page.locator(SAVE).click()
    page.locator("#toasts .toast.err", has_text="Your session changed").wait_for()
    assert page.locator(PROMPT).input_value() == "Refused."
