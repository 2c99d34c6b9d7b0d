"""Django admin renders every model's list, search and form for an operator; what the dashboard's audited services
change (settings, channel overrides, memberships) is read-only there, with a link to the dashboard page."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

import audit
from audit.models import AuditLog
from guilds.models import ChannelSettings, GuildSettings, Membership

MODELS = [
    model
    for model in admin.site._registry
    if model._meta.app_label in {"accounts", "guilds", "audit", "botcore", "llm"}
]


def test_every_parley_model_is_registered():
    names = {model.__name__ for model in MODELS}
    assert {"User", "Guild", "GuildSettings", "ChannelSettings", "Channel", "Membership", "AuditLog"} <= names
    assert {"ShardStatus", "ShardLatencySample", "Usage"} <= names


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_changelist_and_search_render(client, superuser, alice, guild, model):
    audit.record(action="guild.join", guild=guild)
    client.force_login(superuser)
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    assert client.get(url).status_code == 200
    assert client.get(url, {"q": "alice"}).status_code == 200


# Written only by audited services (guilds/services.py, audit.record) or by the bot's guild sync.
READ_ONLY = {"AuditLog", "GuildSettings", "ChannelSettings", "RoleSettings", "Membership", "Guild"}


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_add_form_renders_unless_read_only(client, superuser, model):
    client.force_login(superuser)
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_add")
    expected = 403 if model.__name__ in READ_ONLY else 200
    assert client.get(url).status_code == expected


@pytest.fixture
def rows(guild, alice):
    override = ChannelSettings.objects.create(
        guild=guild, channel_id=guild.channels.get(name="general").discord_id, system_prompt="Pirate talk."
    )
    return {
        "guildsettings": (GuildSettings.objects.get(guild=guild), "guilds:settings"),
        "channelsettings": (override, "guilds:settings"),
        "membership": (Membership.objects.get(user=alice, guild=guild), "guilds:members"),
    }


@pytest.mark.parametrize("name", ["guildsettings", "channelsettings", "membership"])
def test_audited_rows_are_read_only_with_a_dashboard_link(client, superuser, guild, rows, name):
    row, dashboard = rows[name]
    client.force_login(superuser)
    change_url = reverse(f"admin:guilds_{name}_change", args=[row.pk])
    page = client.get(change_url).content.decode()
    assert f'href="{reverse(dashboard, args=[guild.discord_id])}"' in page
    assert 'name="_save"' not in page
    before = type(row).objects.filter(pk=row.pk).values().get()
    forged = {"enabled": "", "role": "user", "system_prompt": "forged", "model": "", "version": 99}
    assert client.post(change_url, forged).status_code == 403
    delete_url = reverse(f"admin:guilds_{name}_delete", args=[row.pk])
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    assert type(row).objects.filter(pk=row.pk).values().get() == before
    assert not AuditLog.objects.exists()  # nothing happened, so nothing to audit
    listing = client.get(reverse(f"admin:guilds_{name}_changelist")).content.decode()
    assert f'href="{reverse(dashboard, args=[guild.discord_id])}"' in listing


def test_the_guild_page_is_read_only_with_its_settings(client, superuser, guild):
    settings_before = GuildSettings.objects.values().get(guild=guild)
    client.force_login(superuser)
    url = reverse("admin:guilds_guild_change", args=[guild.pk])
    page = client.get(url).content.decode()
    assert f'href="{reverse("guilds:settings", args=[guild.discord_id])}"' in page
    assert 'name="settings-0-enabled"' not in page and 'name="_save"' not in page
    # Discord's state is the bot's to sync: neither the guild nor a settings field slipped into the post changes.
    data = {
        "name": "Renamed",
        "is_active": "",
        "settings-0-enabled": "",
        "settings-0-system_prompt": "forged",
    }
    assert client.post(url, data).status_code == 403
    guild.refresh_from_db()
    assert (guild.name, guild.is_active) == ("Parley Test Server", True)
    assert GuildSettings.objects.values().get(guild=guild) == settings_before
    assert not AuditLog.objects.exists()


def test_audit_entries_cannot_be_changed_in_admin(client, superuser, guild):
    entry = audit.record(action="guild.join", guild=guild)
    client.force_login(superuser)
    url = reverse("admin:audit_auditlog_change", args=[entry.pk])
    response = client.post(url, {"action": "tampered"})
    assert response.status_code in {200, 403}
    entry.refresh_from_db()
    assert entry.action == "guild.join"
    assert entry.hash[:12] in client.get(reverse("admin:audit_auditlog_changelist")).content.decode()
    delete_url = reverse("admin:audit_auditlog_delete", args=[entry.pk])
    assert client.post(delete_url, {"post": "yes"}).status_code == 403


def test_admin_requires_staff(client, carol):
    client.force_login(carol)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
