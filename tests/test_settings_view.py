"""/dashboard/guilds/<id>/settings/: everyone with a role sees it; owners and admins save it (HTMX or not)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditLog
from guilds.models import Channel, GuildSettings
from tests.conftest import auth_queries, settings_post_data

HTMX = {"HTTP_HX_REQUEST": "true"}


def url(guild) -> str:
    return reverse("guilds:settings", args=[guild.discord_id])


def stored(guild) -> GuildSettings:
    return GuildSettings.objects.get(guild=guild)


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
    assert '<fieldset class="panel" disabled>' in html
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
    assert "reload to see their changes" in response.content.decode()
    assert stored(guild).system_prompt == "Bob's version"


def test_staff_see_every_guild(client, guild, staff):
    client.force_login(staff)
    assert client.get(url(guild)).status_code == 200
    assert client.post(url(guild), settings_post_data(guild, streaming="")).status_code == 302
    assert AuditLog.objects.get().actor_label == "user"


def test_query_count_is_constant(client, guild, alice, django_assert_num_queries):
    client.force_login(alice)
    client.get(url(guild))  # warm the session and template caches

    with django_assert_num_queries(auth_queries() + 3):  # membership+guild+settings, channels, overrides
        assert client.get(url(guild)).status_code == 200
    Channel.objects.bulk_create(
        Channel(guild=guild, discord_id=300000000000000000 + i, name=f"channel-{i}") for i in range(30)
    )
    with django_assert_num_queries(auth_queries() + 3):
        assert client.get(url(guild)).status_code == 200
