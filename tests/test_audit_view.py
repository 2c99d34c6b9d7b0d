"""/dashboard/guilds/<id>/audit/: newest first, filtered, keyset-paginated; settings changes can be reverted."""

from __future__ import annotations

import csv
import io
import json

import pytest
from asgiref.sync import async_to_sync
from django.urls import reverse

import audit
from audit import export
from audit.models import AuditLog
from audit.views import PAGE_SIZE, word_diff
from guilds import services
from guilds.models import DEFAULT_SYSTEM_PROMPT, GuildSettings
from guilds.services import STALE_MESSAGE
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
    assert html.index(badge("Member added")) < html.index(badge("Settings changed"))  # newest first, in words
    # A long text shows as one word diff: what went, then what came.
    assert "<del>" + DEFAULT_SYSTEM_PROMPT + "</del><ins>Be brief.</ins>" in html
    assert '<th scope="row">System prompt</th>' in html and "system_prompt" not in html
    assert html.count(">Revert…</button>") == 1  # only the settings change
    assert "hx-confirm" not in html  # the revert is confirmed on a page that shows what it changes


def test_filters(client, guild, alice, bob, settings_entry):
    audit.record(action="member.add", guild=guild, actor=bob)
    audit.record(action="guild.join", guild=guild)
    client.force_login(bob)
    by_action = client.get(url(guild), {"action": "member.add"}, **HTMX).content.decode()
    assert by_action.lstrip().startswith('<div id="entries"')
    assert "Member added" in by_action and "Settings changed" not in by_action
    by_actor = client.get(url(guild), {"actor": alice.pk}).content.decode()
    assert f'id="entry-{settings_entry.pk}"' in by_actor and "Member added</span>" not in by_actor
    by_system = client.get(url(guild), {"actor": "system"}).content.decode()
    assert "Parley joined</span>" in by_system and "Settings changed</span>" not in by_system
    page = client.get(url(guild)).content.decode()
    assert '<option value="guild.join">Parley joined</option>' in page  # the filter offers them in words too


def test_back_and_forward_get_the_whole_page(client, guild, bob, settings_entry):
    # The filters and pages push their URL; htmx restores a history entry missing from its cache with HX-Request.
    client.force_login(bob)
    partial = client.get(url(guild), {"action": "settings.update"}, **HTMX)
    assert partial.content.decode().lstrip().startswith('<div id="entries"')
    page = client.get(
        url(guild), {"action": "settings.update"}, HTTP_HX_HISTORY_RESTORE_REQUEST="true", **HTMX
    )
    assert b"<html" in page.content
    assert "HX-Request" in partial["Vary"] and "HX-Request" in page["Vary"]


def test_it_speaks_discord(client, guild, alice, bob, carol):
    """Channels by #name, members by name with their avatar, models by name and provider, roles and fields in
    words; an id the page cannot name says so."""
    general, gone = 222222222222222221, 333
    services.settings_update(
        guild=guild,
        actor=alice,
        changes={
            "allowed_channel_ids": [general],
            "target_user_ids": [carol.discord_id, 4040],
            "user_messages_per_minute": 5,
            "streaming": False,
        },
    )
    audit.record(
        action="settings.update",
        guild=guild,
        changes={"model": ["anthropic/claude-haiku-4-5", "openai/gpt-4o"]},
    )
    audit.record(action="channel_override.set", guild=guild, target=f"channel:{gone}")
    audit.record(action="channel_override.set", guild=guild, target=f"channel:{general}")
    audit.record(
        action="member.role_change", guild=guild, target="user:1003", changes={"role": ["USER", "ADMIN"]}
    )
    client.force_login(bob)
    html = client.get(url(guild)).content.decode()
    assert '<th scope="row">Allowed channels</th>' in html and "<del>All channels</del>" in html
    assert "<ins>#general</ins>" in html and "unknown channel 333" in html
    assert "<ins>Carol, unknown user (4040)</ins>" in html
    assert "Messages per user per minute" in html and "user_messages_per_minute" not in html
    assert "<del>On</del>" in html and "<ins>Off</ins>" in html
    assert "<del>Claude Haiku 4.5 (Anthropic)</del>" in html and "<ins>GPT-4o (OpenAI)</ins>" in html
    assert "<del>User</del>" in html and "<ins>Admin</ins>" in html
    assert f'<img class="avatar small" src="{carol.avatar_url}" alt=""> Carol' in html
    assert f'src="{alice.avatar_url}" alt=""> <strong>Alice</strong>' in html
    assert "channel:" not in html and "user:1003" not in html


def test_word_diff_marks_only_the_words_that_changed():
    before = "You are Parley.\nAnswer concisely and politely."
    after = "You are Parley.\nAnswer briefly and politely, in English."
    assert word_diff(before, after) == [
        ("", "You are Parley.\nAnswer "),
        ("del", "concisely "),
        ("ins", "briefly "),
        ("", "and "),
        ("del", "politely."),
        ("ins", "politely, in English."),
    ]
    assert "".join(text for kind, text in word_diff(before, after) if kind != "del") == after
    assert "".join(text for kind, text in word_diff(before, after) if kind != "ins") == before


def test_a_prompt_edit_shows_the_changed_words(client, guild, alice):
    prompt = "You are Parley, a helpful assistant in a Discord server. Answer concisely, in English."
    services.settings_update(guild=guild, actor=alice, changes={"system_prompt": prompt})
    services.settings_update(
        guild=guild, actor=alice, changes={"system_prompt": prompt.replace("concisely", "at length")}
    )
    client.force_login(alice)
    html = client.get(url(guild)).content.decode()
    assert "server. Answer <del>concisely, </del><ins>at length, </ins>in English.</td>" in html


def test_keyset_pagination(client, guild, bob):
    for i in range(PAGE_SIZE + 5):
        audit.record(action="member.add", guild=guild, target=f"user:{i}")
    ids = list(AuditLog.objects.order_by("-id").values_list("id", flat=True))
    client.force_login(bob)
    first = client.get(url(guild))
    assert first.context["older"] == f"?before={ids[PAGE_SIZE - 1]}"
    assert [e.pk for e, *_ in first.context["rows"]] == ids[:PAGE_SIZE]
    second = client.get(url(guild) + first.context["older"])
    assert [e.pk for e, *_ in second.context["rows"]] == ids[PAGE_SIZE:]
    assert second.context["older"] == "" and second.context["newest"] == "?"
    filtered = client.get(url(guild), {"action": "member.add"})
    assert filtered.context["older"].startswith("?action=member.add&before=")
    # The link lands at the top of the list, without JavaScript (#entries) and with htmx (show:top).
    html = filtered.content.decode()
    older = filtered.context["older"].replace("&", "&amp;")
    assert (
        f'<a href="{older}#entries" hx-get="{older}" hx-target="#entries" hx-swap="outerHTML show:top"'
        in html
    )
    assert '<div id="entries"' in html


def version(guild) -> int:
    return GuildSettings.objects.get(guild=guild).version


def confirm(guild, **extra) -> dict[str, object]:
    """What the preview page's form posts."""
    return {"confirmed": "yes", "version": version(guild), **extra}


def test_revert_works(client, guild, bob, settings_entry):
    client.force_login(bob)
    response = client.post(revert_url(guild, settings_entry), confirm(guild))
    assert response.status_code == 302 and response["Location"] == url(guild)
    assert GuildSettings.objects.get(guild=guild).system_prompt == DEFAULT_SYSTEM_PROMPT
    entry = AuditLog.objects.get(action="settings.revert")
    assert (entry.actor, entry.target) == (bob, f"entry:{settings_entry.pk}")
    assert entry.changes == {"system_prompt": ["Be brief.", DEFAULT_SYSTEM_PROMPT]}
    assert "Change reverted" in client.get(url(guild)).content.decode()


def test_revert_shows_what_it_changes_first(client, guild, alice):
    services.settings_update(
        guild=guild, actor=alice, changes={"temperature": 1.2, "system_prompt": "Be brief."}
    )
    entry = AuditLog.objects.latest("id")
    client.force_login(alice)
    asking = client.post(revert_url(guild, entry))  # the log's Revert button
    html = asking.content.decode()
    assert asking.status_code == 200
    assert (
        '<th scope="row">Temperature</th>' in html and "<del>1.2</del>" in html and "<ins>0.7</ins>" in html
    )
    assert f"<del>Be brief.</del><ins>{DEFAULT_SYSTEM_PROMPT}</ins>" in html
    assert f'name="version" value="{version(guild)}"' in html and 'name="confirmed" value="yes"' in html
    assert "Revert 2 settings" in html
    assert not AuditLog.objects.filter(action="settings.revert").exists()


def test_revert_with_htmx_still_shows_what_it_changes(client, guild, alice, settings_entry):
    client.force_login(alice)
    asking = client.post(revert_url(guild, settings_entry), **HTMX)
    assert asking.status_code == 200 and asking["HX-Retarget"] == "body"
    assert "<del>Be brief.</del>" in asking.content.decode()
    assert not AuditLog.objects.filter(action="settings.revert").exists()
    done = client.post(revert_url(guild, settings_entry), confirm(guild), **HTMX)
    assert done.status_code == 200 and done["HX-Redirect"] == url(guild)
    assert AuditLog.objects.filter(action="settings.revert").exists()


def test_revert_confirmed_without_a_version_only_asks(client, guild, alice, settings_entry):
    client.force_login(alice)
    response = client.post(revert_url(guild, settings_entry), {"confirmed": "yes"})
    assert response.status_code == 422
    assert "then confirm it" in response.content.decode()
    assert GuildSettings.objects.get(guild=guild).system_prompt == "Be brief."
    assert not AuditLog.objects.filter(action="settings.revert").exists()


def test_revert_is_stale_after_a_save_since_the_preview(client, guild, alice, bob, settings_entry):
    client.force_login(alice)
    shown = confirm(guild)
    services.settings_update(guild=guild, actor=bob, changes={"temperature": 1.0})  # unrelated, but a save
    response = client.post(revert_url(guild, settings_entry), shown)
    html = response.content.decode()
    assert response.status_code == 422
    assert STALE_MESSAGE.replace("'", "&#x27;") in html
    assert f'name="version" value="{version(guild)}"' in html  # a fresh preview, to confirm again
    assert GuildSettings.objects.get(guild=guild).system_prompt == "Be brief."
    assert not AuditLog.objects.filter(action="settings.revert").exists()


def test_revert_refuses_to_overwrite_a_later_change(client, guild, alice, bob):
    services.settings_update(
        guild=guild, actor=alice, changes={"temperature": 1.2, "model": "offline/parley-offline"}
    )
    entry = AuditLog.objects.latest("id")
    services.settings_update(guild=guild, actor=bob, changes={"temperature": 1.5})  # later, by someone else
    client.force_login(alice)
    asking = client.post(revert_url(guild, entry)).content.decode()
    assert "Temperature changed again after it" in asking and 'name="confirmed"' not in asking
    response = client.post(revert_url(guild, entry), confirm(guild))
    assert (
        response.status_code == 422 and "Not reverted: temperature changed again" in response.content.decode()
    )
    assert GuildSettings.objects.get(guild=guild).temperature == 1.5
    assert not AuditLog.objects.filter(action="settings.revert").exists()


def test_revert_leaves_a_field_already_back_where_it_was(client, guild, alice, bob):
    services.settings_update(
        guild=guild, actor=alice, changes={"temperature": 1.2, "system_prompt": "Be brief."}
    )
    entry = AuditLog.objects.latest("id")
    services.settings_update(guild=guild, actor=bob, changes={"temperature": 0.7})  # back to before, by hand
    client.force_login(alice)
    asking = client.post(revert_url(guild, entry)).content.decode()
    assert ">Temperature</th>" not in asking and "Revert 1 setting<" in asking
    client.post(revert_url(guild, entry), confirm(guild))
    revert = AuditLog.objects.get(action="settings.revert")
    assert revert.changes == {"system_prompt": ["Be brief.", DEFAULT_SYSTEM_PROMPT]}


def test_it_checks_membership(client, guild, dave, settings_entry):
    client.force_login(dave)
    assert client.get(url(guild)).status_code == 404
    assert client.post(revert_url(guild, settings_entry), confirm(guild)).status_code == 404
    assert not AuditLog.objects.filter(action="settings.revert").exists()


def test_it_requires_role(client, guild, carol, settings_entry):
    client.force_login(carol)
    assert client.get(url(guild)).status_code == 403
    assert client.post(revert_url(guild, settings_entry), confirm(guild)).status_code == 403
    assert not AuditLog.objects.filter(action="settings.revert").exists()


def test_it_rejects_bad_input(client, guild, alice, settings_entry):
    client.force_login(alice)
    member_entry = audit.record(action="member.add", guild=guild, changes={"role": [None, "USER"]})
    client.post(revert_url(guild, member_entry), confirm(guild))
    assert "Only a settings change can be reverted." in client.get(url(guild)).content.decode()
    # An entry whose "before" model is no longer available cannot be put back.
    gone = audit.record(
        action="settings.update", guild=guild, changes={"model": ["openai/gpt-4o", "offline/parley-offline"]}
    )
    assert "is not available" in client.post(revert_url(guild, gone), confirm(guild)).content.decode()
    # A version that is no number is bad input too.
    bad = client.post(revert_url(guild, gone), confirm(guild, version="²"))
    assert bad.status_code == 422 and "Enter a whole number." in bad.content.decode()
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
    # Entries that name channels or users: their names in two more queries, whatever the number of entries.
    for i in range(30):
        audit.record(action="channel_override.set", guild=guild, target=f"channel:{i}")
        audit.record(action="member.add", guild=guild, target=f"user:{1000 + i}")
    with django_assert_num_queries(auth_queries() + 5):
        assert client.get(url(guild)).status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        {"actor": "²"},
        {"actor": "1²"},
        {"actor": "٣"},
        {"actor": "9" * 25},
        {"actor": str(2**63)},
        {"actor": "-1"},
        {"actor": "nobody"},
        {"action": "settings\x00update"},
        {"action": "x" * 51},
        {"before": "²"},
        {"before": "9" * 25},
        {"before": str(2**63)},
        {"before": "0x10"},
    ],
)
def test_bad_filters_are_ignored(client, guild, bob, settings_entry, query):
    """A malformed id or an unknown actor kind filters nothing (as if absent), never a 500."""
    client.force_login(bob)
    response = client.get(url(guild), query)
    assert response.status_code == 200
    assert [e.pk for e, *_ in response.context["rows"]] == [settings_entry.pk]
    assert response.context["filters"] == {}
    assert response.context["newest"] == ""  # the bad cursor is not carried into the links either


def test_largest_ids_filter_without_overflow(client, guild, bob, settings_entry):
    client.force_login(bob)
    by_actor = client.get(url(guild), {"actor": str(2**63 - 1)})
    assert by_actor.status_code == 200 and by_actor.context["rows"] == []
    before = client.get(url(guild), {"before": str(2**63 - 1)})
    assert [e.pk for e, *_ in before.context["rows"]] == [settings_entry.pk]


def export_url(guild, **query) -> str:
    return reverse("audit:export", args=[guild.discord_id]) + (
        "?" + "&".join(f"{k}={v}" for k, v in query.items())
    )


def _body(response) -> bytes:
    """A streamed export's bytes: its chunks come from an async generator, as ASGI serves them."""

    async def collect() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    assert response.is_async
    return async_to_sync(collect)()


def test_export_as_csv(client, guild, alice, bob, settings_entry):
    audit.record(
        action="member.add", guild=guild, actor=bob, target="user:5", changes={"role": [None, "USER"]}
    )
    client.force_login(bob)
    response = client.get(export_url(guild, format="csv"))
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="parley-audit-{guild.discord_id}.csv"'
    rows = list(csv.DictReader(io.StringIO(_body(response).decode())))
    assert [(r["action"], r["actor"], r["actor_discord_id"]) for r in rows] == [
        ("member.add", "Bob", "1002"),
        ("settings.update", "Alice", "1001"),
    ]
    assert json.loads(rows[1]["changes"]) == {"system_prompt": [DEFAULT_SYSTEM_PROMPT, "Be brief."]}
    assert rows[1]["hash"] == settings_entry.hash and rows[1]["created_at"].startswith("20")


def test_export_as_json_with_the_page_filters(client, guild, alice, bob, settings_entry):
    audit.record(action="member.add", guild=guild, actor=bob)
    audit.record(action="member.add", guild=guild, actor=alice)
    client.force_login(alice)
    response = client.get(export_url(guild, format="json", action="member.add", actor=bob.pk, before=1))
    assert response["Content-Type"] == "application/json"
    entries = json.loads(_body(response))
    # The filters apply; the page's cursor does not (an export is every matching entry).
    assert [(e["action"], e["actor"]) for e in entries] == [("member.add", "Bob")]
    assert set(entries[0]) == set(export.COLUMNS)


def test_export_is_read_in_batches(client, guild, bob, monkeypatch):
    monkeypatch.setattr(export, "BATCH", 3)
    for i in range(7):
        audit.record(action="member.add", guild=guild, target=f"user:{i}")
    client.force_login(bob)
    entries = json.loads(_body(client.get(export_url(guild, format="json"))))
    assert [e["target"] for e in entries] == [f"user:{i}" for i in reversed(range(7))]


def test_export_cells_are_never_formulas(client, guild, bob):
    for target in ["=HYPERLINK(1)", "+1", "-2", "@SUM(A1)", "\tx", "plain"]:
        audit.record(action="member.add", guild=guild, target=target)
    client.force_login(bob)
    body = _body(client.get(export_url(guild, format="csv"))).decode()
    targets = [r["target"] for r in csv.DictReader(io.StringIO(body))]
    assert targets == ["plain", "'\tx", "'@SUM(A1)", "'-2", "'+1", "'=HYPERLINK(1)"]


def test_export_checks_membership_and_role(client, guild, carol, dave, settings_entry):
    client.force_login(dave)
    assert client.get(export_url(guild, format="csv")).status_code == 404
    client.force_login(carol)
    assert client.get(export_url(guild, format="csv")).status_code == 403


def test_export_rejects_an_unknown_format(client, guild, bob):
    client.force_login(bob)
    response = client.get(export_url(guild, format="xlsx"))
    assert response.status_code == 400 and b"format=csv or format=json" in response.content
