"""/dashboard/guilds/<id>/audit/: newest first, filtered, keyset-paginated; settings changes can be reverted."""

from __future__ import annotations

from django.urls import reverse

import audit
from audit.models import AuditLog
from audit.views import PAGE_SIZE
from guilds.models import DEFAULT_SYSTEM_PROMPT, GuildSettings
from tests.conftest import auth_queries

HTMX = {"HTTP_HX_REQUEST": "true"}


def url(guild) -> str:
    return reverse("audit:log", args=[guild.discord_id])


def revert_url(guild, entry) -> str:
    return reverse("audit:revert", args=[guild.discord_id, entry.pk])


def test_it_works(client, guild, bob, settings_entry):
    audit.record(
        action="member.add", guild=guild, actor=bob, target="user:5", changes={"role": [None, "USER"]}
    )
    client.force_login(bob)
    html = client.get(url(guild)).content.decode()
    badge = '<span class="badge">{}</span>'.format
    assert html.index(badge("member.add")) < html.index(badge("settings.update"))  # newest first
    assert "<del>" + DEFAULT_SYSTEM_PROMPT + "</del>" in html and "<ins>Be brief.</ins>" in html
    assert html.count(">Revert</button>") == 1  # only the settings change


def test_filters(client, guild, alice, bob, settings_entry):
    audit.record(action="member.add", guild=guild, actor=bob)
    audit.record(action="guild.join", guild=guild)
    client.force_login(bob)
    by_action = client.get(url(guild), {"action": "member.add"}, **HTMX).content.decode()
    assert by_action.lstrip().startswith('<div id="audit-entries">')
    assert "member.add" in by_action and "settings.update" not in by_action
    by_actor = client.get(url(guild), {"actor": alice.pk}).content.decode()
    assert f'id="entry-{settings_entry.pk}"' in by_actor and "member.add</span>" not in by_actor
    by_system = client.get(url(guild), {"actor": "system"}).content.decode()
    assert "guild.join" in by_system and "settings.update</span>" not in by_system


def test_keyset_pagination(client, guild, bob):
    for i in range(PAGE_SIZE + 5):
        audit.record(action="member.add", guild=guild, target=f"user:{i}")
    ids = list(AuditLog.objects.order_by("-id").values_list("id", flat=True))
    client.force_login(bob)
    first = client.get(url(guild))
    assert first.context["older"] == f"?before={ids[PAGE_SIZE - 1]}"
    assert [e.pk for e, _ in first.context["rows"]] == ids[:PAGE_SIZE]
    second = client.get(url(guild) + first.context["older"])
    assert [e.pk for e, _ in second.context["rows"]] == ids[PAGE_SIZE:]
    assert second.context["older"] == "" and second.context["newest"] == "?"
    filtered = client.get(url(guild), {"action": "member.add"})
    assert filtered.context["older"].startswith("?action=member.add&before=")


def test_revert_works(client, guild, bob, settings_entry):
    client.force_login(bob)
    response = client.post(revert_url(guild, settings_entry), {"confirmed": "yes"})
    assert response.status_code == 302 and response["Location"] == url(guild)
    assert GuildSettings.objects.get(guild=guild).system_prompt == DEFAULT_SYSTEM_PROMPT
    entry = AuditLog.objects.get(action="settings.revert")
    assert (entry.actor, entry.target) == (bob, f"entry:{settings_entry.pk}")
    assert entry.changes == {"system_prompt": ["Be brief.", DEFAULT_SYSTEM_PROMPT]}
    assert "Change reverted" in client.get(url(guild)).content.decode()


def test_revert_with_htmx_redirects_the_page(client, guild, alice, settings_entry):
    client.force_login(alice)
    response = client.post(revert_url(guild, settings_entry), **HTMX)
    assert response.status_code == 200 and response["HX-Redirect"] == url(guild)
    assert AuditLog.objects.filter(action="settings.revert").exists()


def test_revert_asks_without_javascript(client, guild, alice, settings_entry):
    client.force_login(alice)
    asking = client.post(revert_url(guild, settings_entry))
    assert asking.status_code == 200 and "Revert the settings change" in asking.content.decode()
    assert not AuditLog.objects.filter(action="settings.revert").exists()


def test_it_checks_membership(client, guild, dave, settings_entry):
    client.force_login(dave)
    assert client.get(url(guild)).status_code == 404
    assert client.post(revert_url(guild, settings_entry), {"confirmed": "yes"}).status_code == 404
    assert not AuditLog.objects.filter(action="settings.revert").exists()


def test_it_requires_role(client, guild, carol, settings_entry):
    client.force_login(carol)
    assert client.get(url(guild)).status_code == 403
    assert client.post(revert_url(guild, settings_entry), {"confirmed": "yes"}).status_code == 403
    assert not AuditLog.objects.filter(action="settings.revert").exists()


def test_it_rejects_bad_input(client, guild, alice, settings_entry):
    client.force_login(alice)
    member_entry = audit.record(action="member.add", guild=guild, changes={"role": [None, "USER"]})
    client.post(revert_url(guild, member_entry), {"confirmed": "yes"})
    assert "Only a settings change can be reverted." in client.get(url(guild)).content.decode()
    # An entry whose "before" model is no longer available cannot be put back.
    gone = audit.record(
        action="settings.update", guild=guild, changes={"model": ["openai/gpt-4o", "offline/parley-offline"]}
    )
    client.post(revert_url(guild, gone), {"confirmed": "yes"})
    assert "is not available" in client.get(url(guild)).content.decode()
    assert GuildSettings.objects.get(guild=guild).model == "offline/parley-offline"
    assert not AuditLog.objects.filter(action="settings.revert").exists()
    # Another guild's entry is not reachable through this guild's URL.
    assert client.post(reverse("audit:revert", args=[guild.discord_id, 10**9])).status_code == 404


def test_query_count_is_constant(client, guild, bob, django_assert_num_queries):
    client.force_login(bob)
    client.get(url(guild))
    with django_assert_num_queries(auth_queries() + 3):  # membership+guild, entries+actors, members
        assert client.get(url(guild)).status_code == 200
    for _ in range(30):
        audit.record(action="settings.update", guild=guild, actor=bob, changes={"temperature": [0.7, 1.0]})
    with django_assert_num_queries(auth_queries() + 3):
        assert client.get(url(guild)).status_code == 200
