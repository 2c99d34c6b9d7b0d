"""/dashboard/guilds/<id>/settings/roles/: a Discord role's own prompt or model, set and removed by admins."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditLog
from guilds.models import RoleSettings

HTMX = {"HTTP_HX_REQUEST": "true"}
VIPS = 333333333333333333


def url(guild) -> str:
    return reverse("guilds:role_override", args=[guild.discord_id])


def remove_url(guild, role_id: int = VIPS) -> str:
    return reverse("guilds:role_override_remove", args=[guild.discord_id, role_id])


def data(
    role_id: object = VIPS, prompt: str = "Treat them like royalty.", model: str = ""
) -> dict[str, object]:
    return {"role-role_id": role_id, "role-system_prompt": prompt, "role-model": model}


def test_it_works(client, guild, bob):
    client.force_login(bob)
    response = client.post(url(guild), data())
    assert response.status_code == 302
    assert RoleSettings.objects.get(guild=guild, role_id=VIPS).system_prompt == "Treat them like royalty."
    entry = AuditLog.objects.get(action="role_override.set")
    assert (entry.actor, entry.target, entry.changes) == (
        bob,
        f"role:{VIPS}",
        {"system_prompt": [None, "Treat them like royalty."], "model": [None, ""]},
    )
    page = client.get(reverse("guilds:settings", args=[guild.discord_id])).content.decode()
    assert str(VIPS) in page and "Treat them like royalty." in page

    edit = client.get(url(guild), {"role": VIPS}, **HTMX)
    assert edit.status_code == 200
    assert edit.content.decode().lstrip().startswith('<section id="role-overrides"')
    assert "Treat them like royalty.</textarea>" in edit.content.decode()

    changed = client.post(url(guild), data(model="offline/parley-offline"), **HTMX)
    assert changed.status_code == 200 and "Saved" in changed.content.decode()
    assert RoleSettings.objects.get().model == "offline/parley-offline"
    assert AuditLog.objects.filter(action="role_override.set").latest("id").changes == {
        "model": ["", "offline/parley-offline"]
    }


def test_the_audit_log_names_the_role(client, guild, alice, bob):
    client.force_login(bob)
    client.post(url(guild), data())
    client.force_login(alice)
    page = client.get(reverse("audit:log", args=[guild.discord_id])).content.decode()
    assert "Role override set" in page and f"role {VIPS}" in page


def test_remove_works_and_asks_without_javascript(client, guild, bob):
    RoleSettings.objects.create(guild=guild, role_id=VIPS, system_prompt="x")
    client.force_login(bob)
    asking = client.post(remove_url(guild))
    assert asking.status_code == 200 and 'name="confirmed" value="yes"' in asking.content.decode()
    assert RoleSettings.objects.exists()
    response = client.post(remove_url(guild), {"confirmed": "yes"})
    assert response.status_code == 302
    assert not RoleSettings.objects.exists()
    entry = AuditLog.objects.get()
    assert (entry.action, entry.changes) == (
        "role_override.remove",
        {"system_prompt": ["x", None], "model": ["", None]},
    )


def test_remove_with_htmx_needs_no_second_step(client, guild, bob):
    RoleSettings.objects.create(guild=guild, role_id=VIPS, model="offline/parley-offline")
    client.force_login(bob)
    response = client.post(remove_url(guild), **HTMX)
    assert response.status_code == 200 and "Role override removed." in response.content.decode()
    assert not RoleSettings.objects.exists()


def test_it_checks_membership(client, guild, dave):
    client.force_login(dave)
    assert client.post(url(guild), data()).status_code == 404
    assert client.post(remove_url(guild), {"confirmed": "yes"}).status_code == 404
    assert not RoleSettings.objects.exists()


def test_it_requires_role(client, guild, carol):
    RoleSettings.objects.create(guild=guild, role_id=VIPS, system_prompt="x")
    client.force_login(carol)
    assert client.get(url(guild)).status_code == 403
    assert client.post(url(guild), data(prompt="y")).status_code == 403
    assert client.post(remove_url(guild), {"confirmed": "yes"}).status_code == 403
    assert RoleSettings.objects.get().system_prompt == "x"
    page = client.get(reverse("guilds:settings", args=[guild.discord_id])).content.decode()
    assert "Add or change a role override" not in page and "Remove</button>" not in page
    assert not AuditLog.objects.exists()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (data(role_id="abc"), "Enter a Discord role id"),
        (data(role_id="0"), "Enter a Discord role id"),
        (data(role_id="99999999999999999999"), "Enter a Discord role id"),
        (data(role_id=str(111111111111111111)), "That is @everyone"),
        (data(prompt="x" * 4001), "at most 4000 characters"),
        (data(model="openai/no-such-model"), "Unknown model"),
        (data(prompt=""), "Set a prompt or a model"),
    ],
)
def test_it_rejects_bad_input(client, guild, bob, payload, message):
    client.force_login(bob)
    response = client.post(url(guild), payload, **HTMX)
    assert response.status_code == 422
    assert message in response.content.decode()
    assert not RoleSettings.objects.exists()
    assert not AuditLog.objects.exists()


def test_removing_a_missing_override_changes_nothing(client, guild, bob):
    client.force_login(bob)
    response = client.post(remove_url(guild), **HTMX)
    assert "This role has no override." in response.content.decode()
    assert not AuditLog.objects.exists()
