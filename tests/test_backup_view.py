"""/dashboard/guilds/<id>/backup/: a server's configuration exported as JSON and imported (into the same server or
another) after a preview, through the services, audited."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditLog
from guilds import backup, services
from guilds.models import Channel, ChannelSettings, Guild, GuildSettings, Membership, RoleSettings
from guilds.provider_keys import provider_key_set
from llm import registry

GENERAL, BOTS = 222222222222222221, 222222222222222222
VIPS, MODS = 333333333333333333, 333333333333333334
OTHER_CHANNEL = 444444444444444441
SERVER_KEY = "sk-backup-secret-key-9876"


def url(guild: Guild) -> str:
    return reverse("guilds:backup", args=[guild.discord_id])


def export_url(guild: Guild) -> str:
    return reverse("guilds:backup_export", args=[guild.discord_id])


def upload(data: Any, name: str = "parley.json") -> dict[str, Any]:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return {"file": SimpleUploadedFile(name, raw, content_type="application/json")}


def payload(response) -> str:
    match = re.search(r'name="payload" value="([^"]+)"', response.content.decode())
    assert match, "the preview has a confirm form"
    return match.group(1)


def configured(guild: Guild, user) -> None:
    """A server with a few settings, a channel override and a role override."""
    services.settings_update(
        guild=guild,
        actor=user,
        changes={
            "system_prompt": "Speak like a pirate.",
            "temperature": 1.2,
            "daily_budget_usd": "5.25",
            "allowed_channel_ids": [GENERAL],
            "blocked_user_ids": [9999],
        },
    )
    services.channel_override_set(
        guild=guild, actor=user, channel_id=GENERAL, mode="everyone", cooldown_seconds=30
    )
    services.role_override_set(guild=guild, actor=user, role_id=VIPS, system_prompt="Be formal.")


def state(guild: Guild) -> dict[str, Any]:
    row = GuildSettings.objects.get(guild=guild)
    return {
        "settings": {name: getattr(row, name) for name in services.EDITABLE_FIELDS},
        "channels": sorted(
            ChannelSettings.objects.filter(guild=guild).values_list(
                "channel_id", "system_prompt", "model", "mode", "cooldown_seconds"
            )
        ),
        "roles": sorted(
            RoleSettings.objects.filter(guild=guild).values_list("role_id", "system_prompt", "model")
        ),
    }


@pytest.fixture
def other(bob) -> Guild:
    """A second server, where bob is an admin, with channels of its own."""
    other = Guild.objects.create_with_settings(discord_id=555555555555555555, name="Other Server")
    Channel.objects.create(guild=other, discord_id=OTHER_CHANNEL, name="chat")
    Membership.objects.create(user=bob, guild=other, role=Membership.Role.ADMIN)
    return other


def test_export_is_a_download_of_the_configuration(client, guild, alice, bob, settings):
    settings.PARLEY_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    configured(guild, alice)
    provider_key_set(guild=guild, actor=alice, provider="openai", api_key=SERVER_KEY)
    client.force_login(bob)
    response = client.get(export_url(guild))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    today = timezone.now().strftime("%Y-%m-%d")
    assert response["Content-Disposition"] == f'attachment; filename="parley-parley-test-server-{today}.json"'
    data = json.loads(response.content)
    assert (data["format"], data["version"]) == ("parley-config", 1)
    assert data["guild"] == {"name": "Parley Test Server", "discord_id": guild.discord_id}
    assert set(data["settings"]) == set(services.EDITABLE_FIELDS)
    assert data["settings"]["daily_budget_usd"] == "5.25"
    assert data["channel_overrides"] == [
        {
            "channel_id": GENERAL,
            "channel_name": "general",
            "system_prompt": "",
            "model": "",
            "mode": "everyone",
            "cooldown_seconds": 30,
        }
    ]
    assert data["role_overrides"] == [{"role_id": VIPS, "system_prompt": "Be formal.", "model": ""}]
    # Never a provider key (not even its last four characters or its provider), never a database row id.
    text = response.content.decode()
    assert SERVER_KEY not in text and SERVER_KEY[-4:] not in text and "openai" not in text
    assert "encrypted" not in text and '"id"' not in text and '"pk"' not in text


def test_it_works(client, guild, alice, bob):
    """Export, change the server, import the file back: the server is as it was, every change audited."""
    configured(guild, alice)
    client.force_login(bob)
    exported = client.get(export_url(guild)).content
    before = state(guild)
    services.settings_update(guild=guild, actor=alice, changes={"temperature": 0.2, "streaming": False})
    services.channel_override_remove(guild=guild, actor=alice, channel_id=GENERAL)
    services.channel_override_set(guild=guild, actor=alice, channel_id=BOTS, system_prompt="Bots only.")
    services.role_override_set(guild=guild, actor=alice, role_id=MODS, model="offline/parley-offline")
    entries = AuditLog.objects.count()

    preview = client.post(url(guild), upload(exported))
    assert preview.status_code == 200
    page = preview.content.decode()
    assert "From Parley Test Server (111111111111111111)" in page
    assert "Temperature" in page and "0.2" in page and "1.2" in page
    assert "Stream replies as they are written" in page
    assert "#general" in page and "added" in page and "#bots" in page and "removed" in page
    assert f"role {MODS}" in page and "Answer every message" in page
    assert AuditLog.objects.count() == entries, "the preview changes nothing"
    assert state(guild) != before

    response = client.post(url(guild), {"confirmed": "yes", "payload": payload(preview)})
    assert response.status_code == 302 and response["Location"] == url(guild)
    assert state(guild) == before
    done = client.get(url(guild)).content.decode()
    assert (
        "Imported from Parley Test Server (111111111111111111): 2 settings, 2 channel overrides, 1 role override"
        in done
    )

    new = AuditLog.objects.filter(pk__gt=0).order_by("id")[entries:]
    assert [(e.action, e.target) for e in new] == [
        ("settings.update", "settings (import)"),
        ("channel_override.remove", f"channel:{BOTS}"),
        ("channel_override.set", f"channel:{GENERAL}"),
        ("role_override.remove", f"role:{MODS}"),
        ("config.import", "settings (import)"),
    ]
    assert all(e.actor == bob for e in new)
    assert new[0].changes == {"temperature": [0.2, 1.2], "streaming": [False, True]}
    assert new[4].changes == {"from": [None, "Parley Test Server (111111111111111111)"], "changes": [None, 5]}
    log = client.get(reverse("audit:log", args=[guild.discord_id])).content.decode()
    assert "Configuration imported" in log


def test_a_round_trip_into_another_server(client, guild, alice, bob, other):
    configured(guild, alice)
    client.force_login(bob)
    exported = client.get(export_url(guild)).content
    preview = client.post(url(other), upload(exported))
    assert preview.status_code == 200
    page = preview.content.decode()
    # The source's channels are not in this server: flagged in the preview, and skipped.
    assert "Not imported" in page and f"#general ({GENERAL})" in page
    assert "this server keeps its own list" in page
    response = client.post(url(other), {"confirmed": "yes", "payload": payload(preview)})
    assert response.status_code == 302

    source, target = state(guild), state(other)
    assert target["roles"] == source["roles"]
    assert target["channels"] == []
    assert target["settings"] == source["settings"] | {"allowed_channel_ids": []}
    assert target["settings"]["daily_budget_usd"] == Decimal("5.25")
    assert AuditLog.objects.filter(guild=other, action="config.import", actor=bob).exists()


def test_known_channels_are_kept_and_unknown_ones_dropped(client, guild, bob):
    client.force_login(bob)
    data = backup.config_export(guild) | {
        "settings": {"allowed_channel_ids": [GENERAL, OTHER_CHANNEL]},
        "channel_overrides": [
            {"channel_id": OTHER_CHANNEL, "channel_name": "chat", "system_prompt": "Elsewhere."},
            {"channel_id": BOTS, "model": "offline/parley-offline"},
        ],
    }
    del data["role_overrides"]  # a section absent from the file is left as it is
    RoleSettings.objects.create(guild=guild, role_id=VIPS, system_prompt="Stays.")
    preview = client.post(url(guild), upload(data))
    page = preview.content.decode()
    assert f"#chat ({OTHER_CHANNEL})" in page and f"Allowed channel {OTHER_CHANNEL}" in page
    client.post(url(guild), {"confirmed": "yes", "payload": payload(preview)})
    assert GuildSettings.objects.get(guild=guild).allowed_channel_ids == [GENERAL]
    assert list(ChannelSettings.objects.values_list("channel_id", flat=True)) == [BOTS]
    assert RoleSettings.objects.get().system_prompt == "Stays."


def test_importing_the_same_configuration_changes_nothing(client, guild, bob):
    client.force_login(bob)
    exported = client.get(export_url(guild)).content
    preview = client.post(url(guild), upload(exported))
    assert "Nothing would change" in preview.content.decode()
    assert 'name="payload"' not in preview.content.decode()
    assert not AuditLog.objects.exists()


def _file(**changes: Any) -> dict[str, Any]:
    return {"format": "parley-config", "version": 1, "settings": {}} | changes


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "This file is not valid JSON"),
        (b"\xff\xfe", "This file is not valid JSON"),
        (b'{"format": "parley-config", "version": 1, "settings": {"temperature": NaN}}', "not valid JSON"),
        (b"[]", "Not a Parley configuration file"),
        (_file(format="something-else"), "Not a Parley configuration file"),
        (_file(version=2), "This file is version 2; this Parley reads version 1."),
        (_file(extra={}), "extra: Unknown section."),
        (_file(settings={"colour": "red"}), "settings.colour: Unknown setting."),
        (
            _file(settings={"temperature": 5}),
            "settings.temperature: Ensure this value is less than or equal to 2.0",
        ),
        (_file(settings={"temperature": "hot"}), "settings.temperature: Expected a number."),
        (_file(settings={"enabled": "yes"}), "settings.enabled: Expected true or false."),
        (_file(settings={"daily_budget_usd": "lots"}), "settings.daily_budget_usd: Expected an amount"),
        (_file(settings={"model": "openai/no-such-model"}), "settings.model: Unknown model"),
        (
            _file(settings={"blocked_user_ids": [-1]}),
            "settings.blocked_user_ids: Enter a list of Discord ids",
        ),
        (
            _file(settings={"system_prompt": "x" * 4001}),
            "settings.system_prompt: The prompt is 4001 characters",
        ),
        (_file(channel_overrides={}), "channel_overrides: Expected a list."),
        (
            _file(channel_overrides=[{"channel_id": "general"}]),
            "channel_overrides[0].channel_id: Expected a Discord id",
        ),
        (
            _file(
                channel_overrides=[{"channel_id": GENERAL, "mode": "x"}, {"channel_id": GENERAL, "mode": "x"}]
            ),
            "channel_overrides[1].channel_id: This id is in the list twice.",
        ),
        (
            _file(channel_overrides=[{"channel_id": GENERAL, "mode": "sometimes"}]),
            "channel_overrides[0].mode: Pick",
        ),
        (
            _file(channel_overrides=[{"channel_id": GENERAL, "colour": 1}]),
            "channel_overrides[0].colour: Unknown field.",
        ),
        (_file(role_overrides=[{"role_id": VIPS}]), "role_overrides[0]: Set a prompt or a model"),
        (
            _file(role_overrides=[{"role_id": 111111111111111111, "model": "x"}]),
            "role_overrides[0].role_id: That is",
        ),
        (b"{" + b" " * (256 * 1024) + b"}", "The file is larger than 256 KB"),
    ],
)
def test_it_rejects_bad_input(client, guild, alice, bob, raw, message):
    configured(guild, alice)
    before, entries = state(guild), AuditLog.objects.count()
    client.force_login(bob)
    response = client.post(url(guild), upload(raw))
    assert response.status_code == 422
    page = response.content.decode()
    assert "Nothing was imported" in page
    assert message in page.replace("&quot;", '"').replace("&#x27;", "'")
    assert state(guild) == before and AuditLog.objects.count() == entries


def test_every_error_is_reported_at_once(client, guild, bob):
    client.force_login(bob)
    data = _file(settings={"temperature": 9, "history_messages": 500}, role_overrides=[{"role_id": VIPS}])
    page = client.post(url(guild), upload(data)).content.decode()
    assert "The file has 3 problems" in page
    assert (
        "settings.temperature" in page and "settings.history_messages" in page and "role_overrides[0]" in page
    )


def test_a_missing_file_is_a_field_error(client, guild, bob):
    client.force_login(bob)
    response = client.post(url(guild), {})
    assert response.status_code == 422 and "Choose the file to import." in response.content.decode()


def test_confirm_refuses_a_changed_payload(client, guild, bob, other):
    client.force_login(bob)
    preview = client.post(url(guild), upload(_file(settings={"temperature": 1.5})))
    signed = payload(preview)
    for bad in (signed[:-2] + "xx", ""):
        response = client.post(url(guild), {"confirmed": "yes", "payload": bad}, follow=True)
        assert "This preview has expired or is not valid here" in response.content.decode()
    # A preview is signed for its server: it cannot be confirmed in another.
    response = client.post(url(other), {"confirmed": "yes", "payload": signed}, follow=True)
    assert "This preview has expired or is not valid here" in response.content.decode()
    assert GuildSettings.objects.get(guild=guild).temperature == 0.7
    assert not AuditLog.objects.exists()


def test_confirm_after_another_change_shows_the_preview_again(client, guild, alice, bob):
    client.force_login(bob)
    preview = client.post(url(guild), upload(_file(settings={"temperature": 1.5, "streaming": False})))
    services.settings_update(guild=guild, actor=alice, changes={"streaming": False})
    response = client.post(url(guild), {"confirmed": "yes", "payload": payload(preview)})
    assert response.status_code == 422
    page = response.content.decode()
    assert "The configuration changed since this preview" in page
    assert "Stream replies" not in page, "the new preview shows only what is still to change"
    assert GuildSettings.objects.get(guild=guild).temperature == 0.7
    response = client.post(url(guild), {"confirmed": "yes", "payload": payload(response)})
    assert response.status_code == 302
    assert GuildSettings.objects.get(guild=guild).temperature == 1.5


def test_an_imported_settings_change_can_be_reverted(client, guild, bob):
    client.force_login(bob)
    preview = client.post(url(guild), upload(_file(settings={"temperature": 1.5})))
    client.post(url(guild), {"confirmed": "yes", "payload": payload(preview)})
    entry = AuditLog.objects.get(action="settings.update")
    version = GuildSettings.objects.get(guild=guild).version
    response = client.post(
        reverse("audit:revert", args=[guild.discord_id, entry.pk]), {"confirmed": "yes", "version": version}
    )
    assert response.status_code == 302
    assert GuildSettings.objects.get(guild=guild).temperature == 0.7


def test_it_checks_membership(client, guild, dave):
    client.force_login(dave)
    assert client.get(url(guild)).status_code == 404
    assert client.get(export_url(guild)).status_code == 404
    assert client.post(url(guild), upload(_file(settings={"temperature": 1.5}))).status_code == 404
    assert GuildSettings.objects.get(guild=guild).temperature == 0.7


def test_it_requires_role(client, guild, carol):
    client.force_login(carol)
    assert client.get(url(guild)).status_code == 403
    assert client.get(export_url(guild)).status_code == 403
    assert client.post(url(guild), upload(_file(settings={"temperature": 1.5}))).status_code == 403
    assert GuildSettings.objects.get(guild=guild).temperature == 0.7
    assert not AuditLog.objects.exists()
    page = client.get(reverse("guilds:settings", args=[guild.discord_id])).content.decode()
    assert url(guild) not in page, "the sidebar shows no Backup link to a user"


def test_the_page_offers_export_and_import(client, guild, alice):
    client.force_login(alice)
    page = client.get(url(guild)).content.decode()
    assert export_url(guild) in page and 'enctype="multipart/form-data"' in page
    assert 'aria-current="page">Backup</a>' in page


def test_confirm_checks_the_file_again(client, guild, alice, bob, monkeypatch):
    """Valid at the preview, not at the confirmation (the model stopped being offered): nothing changes."""
    client.force_login(bob)
    data = _file(settings={"temperature": 1.5, "fallback_model": "offline/parley-offline"})
    preview = client.post(url(guild), upload(data))
    assert preview.status_code == 200
    services.settings_update(
        guild=guild, actor=alice, changes={"streaming": False}
    )  # the preview is stale too

    def withdrawn(model_id: str, own: Any = None) -> None:
        raise ValidationError("Unknown model %(model)s: pick one from the list.", params={"model": model_id})

    monkeypatch.setattr(registry, "validate_model_id", withdrawn)
    response = client.post(url(guild), {"confirmed": "yes", "payload": payload(preview)})
    assert response.status_code == 422
    assert "settings.fallback_model: Unknown model offline/parley-offline" in response.content.decode()
    assert GuildSettings.objects.get(guild=guild).temperature == 0.7
    assert not AuditLog.objects.filter(action="config.import").exists()
