"""/dashboard/guilds/<id>/settings/: everyone with a role sees it; owners and admins save it (HTMX or not)."""

from __future__ import annotations

import html as html_lib
import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse

from accounts import discord_oauth
from audit.models import AuditLog
from guilds.models import Channel, GuildSettings
from guilds.services import settings_update
from tests.conftest import auth_queries, settings_post_data

HTMX = {"HTTP_HX_REQUEST": "true"}


def url(guild) -> str:
    return reverse("guilds:settings", args=[guild.discord_id])


def stored(guild) -> GuildSettings:
    return GuildSettings.objects.get(guild=guild)


def toast(response) -> dict:
    return json.loads(response["HX-Trigger"])["parley:toast"]


def test_it_works(client, guild, alice):
    client.force_login(alice)
    page = client.get(url(guild))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="version" value="1"' in html
    assert "#general" in html and "Save settings" in html
    assert 'disabled title="Set OPENAI_API_KEY to enable OpenAI models"' in html  # unavailable provider
    data = settings_post_data(
        guild, system_prompt="Speak like a pirate.", allowed_channel_ids=[222222222222222222]
    )
    response = client.post(url(guild), data)
    assert response.status_code == 302 and response["Location"] == url(guild)
    row = stored(guild)
    assert (row.system_prompt, row.allowed_channel_ids, row.version) == (
        "Speak like a pirate.",
        [222222222222222222],
        2,
    )
    entry = AuditLog.objects.get(action="settings.update")
    assert entry.actor == alice
    assert entry.changes["system_prompt"][1] == "Speak like a pirate."
    assert entry.changes["allowed_channel_ids"] == [[], [222222222222222222]]
    assert "Settings saved." in client.get(url(guild)).content.decode()


def test_it_works_with_htmx(client, guild, bob):
    client.force_login(bob)
    response = client.post(
        url(guild), settings_post_data(guild, temperature="1.3", target_user_ids=[5, 6]), **HTMX
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<form id="settings-form"')  # the partial only, swapped in place
    assert "Saved" in html and 'name="version" value="2"' in html
    assert 'hx-disabled-elt="find button[type=submit]"' in html  # busy while the request runs
    assert toast(response) == {"level": "ok", "text": "Settings saved."}
    assert (stored(guild).temperature, stored(guild).target_user_ids) == (1.3, [5, 6])
    assert AuditLog.objects.get().changes == {"temperature": [0.7, 1.3], "target_user_ids": [[], [5, 6]]}


def test_it_checks_membership(client, guild, dave):
    client.force_login(dave)
    assert client.get(url(guild)).status_code == 404
    assert client.post(url(guild), settings_post_data(guild, temperature="1")).status_code == 404
    assert client.get(reverse("guilds:settings", args=[123])).status_code == 404
    assert stored(guild).version == 1


def test_it_requires_role(client, guild, carol):
    client.force_login(carol)
    page = client.get(url(guild))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="settings-form"' not in html and "<fieldset" not in html  # a summary, not a greyed-out form
    assert "<dt>Temperature</dt><dd>0.7</dd>" in html
    assert "<dt>Allowed channels</dt><dd>Every channel</dd>" in html
    assert "Save settings" not in html and "hx-post" not in html.split('id="overrides"')[0]
    assert reverse("guilds:members", args=[guild.discord_id]) not in html
    assert reverse("audit:log", args=[guild.discord_id]) not in html
    response = client.post(url(guild), settings_post_data(guild, system_prompt="hijacked"))
    assert response.status_code == 403
    assert stored(guild).system_prompt != "hijacked"
    assert not AuditLog.objects.exists()


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"allowed_channel_ids": ["999"]}, "allowed_channel_ids", "Select a valid choice"),
        ({"system_prompt": "x" * 4001}, "system_prompt", "at most 4000 characters"),
        ({"model": "openai/no-such-model"}, "model", "Unknown model openai/no-such-model"),
        ({"model": "anthropic/claude-haiku-4-5"}, "model", "Set ANTHROPIC_API_KEY"),
        ({"temperature": "2.5"}, "temperature", "less than or equal to 2"),
        ({"temperature": "cold"}, "temperature", "Enter a number"),
        ({"target_user_ids": "12, bob"}, "target_user_ids", "is not a Discord id"),
        ({"blocked_user_ids": "-5"}, "blocked_user_ids", "is not a Discord id"),
        ({"max_output_tokens": "100000"}, "max_output_tokens", "less than or equal to 8192"),
        ({"version": "0"}, None, "Someone else saved these settings since you opened the page"),
    ],
)
def test_it_rejects_bad_input(client, guild, alice, changes, field, message):
    client.force_login(alice)
    before = stored(guild)
    response = client.post(url(guild), settings_post_data(guild, **changes), **HTMX)
    assert response.status_code == 422
    html = response.content.decode()
    assert message in html
    assert toast(response)["level"] in {"err", "warn"}
    if field:
        assert f'id="id_{field}_error"' in html or "errorlist" in html
    assert stored(guild).version == before.version
    assert stored(guild).system_prompt == before.system_prompt
    assert not AuditLog.objects.exists()


def test_stale_form_without_htmx(client, guild, alice, bob):
    client.force_login(alice)
    opened = settings_post_data(guild, system_prompt="Alice's version")
    client.force_login(bob)
    client.post(url(guild), settings_post_data(guild, system_prompt="Bob's version"))
    client.force_login(alice)
    response = client.post(url(guild), opened)
    assert response.status_code == 422
    html = response.content.decode()
    assert "Someone else saved these settings since you opened the page" in html
    assert "Saved meanwhile by Bob" in html and "Keep my changes" in html and "Discard mine" in html
    assert stored(guild).system_prompt == "Bob's version"


def stale_rows(html: str) -> list[list[str]]:
    """The comparison table: [setting, saved meanwhile, your edit] per row, as text."""

    table = html.split('class="stale-diff"')[1].split("</table>")[0]
    rows = re.findall(
        r"<tr[^>]*>\s*<th scope=\"row\">(.*?)</th>\s*<td>(.*?)</td>\s*<td>(.*?)</td>", table, re.S
    )
    return [[html_lib.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in row] for row in rows]


def test_a_stale_edit_shows_what_changed_meanwhile_next_to_your_edits(client, guild, alice, bob):
    client.force_login(bob)
    opened = settings_post_data(guild, system_prompt="Bob's prompt", temperature="0.2")  # at version 1
    settings_update(guild=guild, actor=alice, changes={"temperature": 1.1, "streaming": False})
    settings_update(guild=guild, actor=alice, changes={"user_messages_per_day": 50})
    response = client.post(url(guild), opened, **HTMX)
    assert response.status_code == 422
    assert toast(response)["level"] == "warn"
    html = response.content.decode()
    assert html.lstrip().startswith('<form id="settings-form"')
    assert "Saved meanwhile by Alice" in html
    assert stale_rows(html) == [
        ["System prompt", "not changed", "Bob's prompt"],
        ["Temperature", "1.1", "0.2"],  # both changed it: his edit is kept, hers shown beside it
        ["Stream replies as they are written", "Off", "not edited: theirs is kept"],
        ["Messages per user per day", "50", "not edited: theirs is kept"],
    ]
    # The form is his edits on top of what is stored now, at the stored version: saving it keeps both.
    assert 'name="version" value="3"' in html
    assert "Bob&#x27;s prompt</textarea>" in html
    assert 'name="user_messages_per_day" value="50"' in html
    assert 'name="streaming" id="id_streaming" checked' not in html
    assert "data-unsaved" in html and "Not saved: someone else changed these settings meanwhile." in html
    assert stored(guild).system_prompt != "Bob's prompt"

    keep = settings_post_data(guild, system_prompt="Bob's prompt", temperature="0.2")  # the re-rendered form
    response = client.post(url(guild), keep, **HTMX)
    assert response.status_code == 200 and toast(response)["level"] == "ok"
    row = stored(guild)
    assert (row.system_prompt, row.temperature, row.streaming, row.user_messages_per_day) == (
        "Bob's prompt",
        0.2,
        False,
        50,
    )


def test_a_stale_edit_after_an_override_change_shows_only_your_edits(client, guild, alice, bob):
    from guilds.services import channel_override_set

    client.force_login(bob)
    opened = settings_post_data(guild, temperature="0.3")
    channel_override_set(guild=guild, actor=alice, channel_id=222222222222222221, system_prompt="Short.")
    response = client.post(url(guild), opened, **HTMX)
    html = response.content.decode()
    assert response.status_code == 422
    assert stale_rows(html) == [["Temperature", "not changed", "0.3"]]
    assert 'name="version" value="2"' in html


def test_a_user_sees_a_summary(client, guild, carol):
    settings_update(
        guild=guild,
        actor=None,
        changes={
            "allowed_channel_ids": [222222222222222222],
            "user_messages_per_day": 20,
            "streaming": False,
        },
    )
    client.force_login(carol)
    html = client.get(url(guild)).content.decode()
    assert '<dl class="settings-summary">' in html
    assert "<dt>Allowed channels</dt><dd>#bots</dd>" in html
    assert "<dt>Messages per user per day</dt><dd>20</dd>" in html
    assert "<dt>Messages per user per minute</dt><dd>No limit</dd>" in html
    assert "<dt>Stream replies as they are written</dt><dd>Off</dd>" in html
    assert "only owners and admins can change them" in html


def test_a_server_the_bot_left_shows_a_banner_with_the_invite(client, guild, alice, settings):
    settings.DISCORD_CLIENT_ID = "1234567890"
    client.force_login(alice)
    assert "not in this server any more" not in client.get(url(guild)).content.decode()
    guild.is_active = False
    guild.save(update_fields=["is_active"])
    html = client.get(url(guild)).content.decode()
    assert "Parley is not in this server any more" in html
    invite = html.split('class="bot-absent"')[1].split('href="')[1].split('"')[0].replace("&amp;", "&")
    assert invite == discord_oauth.invite_url(guild.discord_id)
    query = parse_qs(urlsplit(invite).query)
    assert query["guild_id"] == [str(guild.discord_id)] and query["scope"] == ["bot applications.commands"]
    # View Channels, Send Messages, Send Messages in Threads, Read Message History, Embed Links, Attach Files
    wanted = (1 << 10) | (1 << 11) | (1 << 38) | (1 << 16) | (1 << 14) | (1 << 15)
    assert query["permissions"] == [str(wanted)]


def test_staff_see_every_guild(client, guild, staff):
    client.force_login(staff)
    assert client.get(url(guild)).status_code == 200
    assert client.post(url(guild), settings_post_data(guild, streaming="")).status_code == 302
    assert AuditLog.objects.get().actor_label == "user"


def test_query_count_is_constant(client, guild, alice, django_assert_num_queries):
    client.force_login(alice)
    client.get(url(guild))  # warm the session and template caches

    # membership+guild+settings, channels, channel overrides, role overrides, the server's provider keys
    with django_assert_num_queries(auth_queries() + 5):
        assert client.get(url(guild)).status_code == 200
    Channel.objects.bulk_create(
        Channel(guild=guild, discord_id=300000000000000000 + i, name=f"channel-{i}") for i in range(30)
    )
    with django_assert_num_queries(auth_queries() + 5):
        assert client.get(url(guild)).status_code == 200


def test_the_reasoning_display_is_saved_and_audited(client, guild, bob):
    client.force_login(bob)
    assert 'name="reasoning_display"' in client.get(url(guild)).content.decode()
    response = client.post(url(guild), settings_post_data(guild, reasoning_display="spoiler"))
    assert response.status_code == 302
    assert stored(guild).reasoning_display == "spoiler"
    entry = AuditLog.objects.get(action="settings.update")
    assert entry.changes == {"reasoning_display": ["hidden", "spoiler"]}


def test_an_unknown_reasoning_display_is_refused(client, guild, bob):
    client.force_login(bob)
    response = client.post(url(guild), settings_post_data(guild, reasoning_display="shout"))
    assert response.status_code == 422
    assert "Select a valid choice" in response.content.decode()
    assert stored(guild).reasoning_display == "hidden" and not AuditLog.objects.exists()


def test_users_read_the_reasoning_display_in_words(client, guild, carol):
    settings_update(guild=guild, actor=None, changes={"reasoning_display": "spoiler"})
    client.force_login(carol)
    html = client.get(url(guild)).content.decode()
    assert "Shown as a collapsed spoiler above the answer" in html
    assert 'name="reasoning_display"' not in html


def test_blocked_users_are_saved_audited_and_shown_to_users(client, guild, bob, carol):
    client.force_login(bob)
    response = client.post(url(guild), settings_post_data(guild, blocked_user_ids=[1234, 5678]))
    assert response.status_code == 302
    assert stored(guild).blocked_user_ids == [1234, 5678]
    entry = AuditLog.objects.get(action="settings.update")
    assert entry.changes == {"blocked_user_ids": [[], [1234, 5678]]}
    client.force_login(carol)
    page = client.get(url(guild)).content.decode()
    assert "<dt>Blocked users</dt><dd>1234, 5678</dd>" in page
