"""Django admin renders every model's list, search and form for an operator."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

import audit

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


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_add_form_renders_unless_read_only(client, superuser, model):
    client.force_login(superuser)
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_add")
    expected = 403 if model.__name__ == "AuditLog" else 200
    assert client.get(url).status_code == expected


def test_audit_entries_cannot_be_changed_in_admin(client, superuser, guild):
    entry = audit.record(action="guild.join", guild=guild)
    client.force_login(superuser)
    url = reverse("admin:audit_auditlog_change", args=[entry.pk])
    response = client.post(url, {"action": "tampered"})
    assert response.status_code in {200, 403}
    entry.refresh_from_db()
    assert entry.action == "guild.join"
    delete_url = reverse("admin:audit_auditlog_delete", args=[entry.pk])
    assert client.post(delete_url, {"post": "yes"}).status_code == 403


def test_admin_requires_staff(client, carol):
    client.force_login(carol)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
