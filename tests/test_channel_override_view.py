"""/dashboard/guilds/<id>/settings/overrides/: a channel's own prompt or model, set and removed by admins."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditLog
from guilds.models import ChannelSettings

HTMX = {"HTTP_HX_REQUEST": "true"}
GENERAL = 222222222222222221


def url(guild) -> str:
    return reverse("guilds:override", args=[guild.discord_id])


def remove_url(guild, channel_id: int = GENERAL) -> str:
    return reverse("guilds:override_remove", args=[guild.discord_id, channel_id])


def data(
    channel_id: object = GENERAL,
    prompt: str = "Answer in French.",
    model: str = "",
    mode: str = "",
    cooldown: object = "",
) -> dict[str, object]:
    return {
        "override-channel_id": channel_id,
        "override-system_prompt": prompt,
        "override-model": model,
        "override-mode": mode,
        "override-cooldown_seconds": cooldown,
    }


def test_it_works(client, guild, bob):
    client.force_login(bob)
    response = client.post(url(guild), data())
    assert response.status_code == 302
    assert ChannelSettings.objects.get(guild=guild, channel_id=GENERAL).system_prompt == "Answer in French."
    entry = AuditLog.objects.get(action="channel_override.set")
    assert (entry.actor, entry.target, entry.changes) == (
        bob,
        f"channel:{GENERAL}",
        {"system_prompt": [None, "Answer in French."], "model": [None, ""]},
    )
    page = client.get(reverse("guilds:settings", args=[guild.discord_id])).content.decode()
    assert "#general" in page and "Answer in French." in page

    edit = client.get(url(guild), {"channel": GENERAL}, **HTMX)
    assert edit.status_code == 200
    assert edit.content.decode().lstrip().startswith('<section id="overrides"')
    assert "Answer in French.</textarea>" in edit.content.decode()

    changed = client.post(url(guild), data(model="offline/parley-offline"), **HTMX)
    assert changed.status_code == 200 and "Saved" in changed.content.decode()
    assert ChannelSettings.objects.get().model == "offline/parley-offline"


def test_a_conversation_mode_is_saved_and_audited(client, guild, bob):
    client.force_login(bob)
    response = client.post(url(guild), data(prompt="", mode="everyone", cooldown="30"), **HTMX)
    assert response.status_code == 200 and "Answer every message" in response.content.decode()
    override = ChannelSettings.objects.get(guild=guild, channel_id=GENERAL)
    assert (override.mode, override.cooldown_seconds, override.system_prompt) == ("everyone", 30, "")
    entry = AuditLog.objects.get(action="channel_override.set")
    assert entry.changes == {"system_prompt": [None, ""], "model": [None, ""], "mode": ["", "everyone"],
                             "cooldown_seconds": [0, 30]}  # fmt: skip
    client.post(url(guild), data(prompt="", mode="threads", cooldown="0"))
    assert ChannelSettings.objects.get().mode == "threads"
    changed = AuditLog.objects.filter(action="channel_override.set").latest("id")
    assert changed.changes == {"mode": ["everyone", "threads"], "cooldown_seconds": [30, 0]}
    edit = client.get(url(guild), {"channel": GENERAL}, **HTMX).content.decode()
    assert '<option value="threads" selected>' in edit


def test_remove_works_and_asks_without_javascript(client, guild, bob):
    ChannelSettings.objects.create(guild=guild, channel_id=GENERAL, system_prompt="x")
    client.force_login(bob)
    asking = client.post(remove_url(guild))
    assert asking.status_code == 200
    assert (
        "Are you sure?" in asking.content.decode()
        and 'name="confirmed" value="yes"' in asking.content.decode()
    )
    assert ChannelSettings.objects.exists()
    response = client.post(remove_url(guild), {"confirmed": "yes"})
    assert response.status_code == 302
    assert not ChannelSettings.objects.exists()
    assert AuditLog.objects.get().action == "channel_override.remove"


def test_remove_with_htmx_needs_no_second_step(client, guild, bob):
    ChannelSettings.objects.create(guild=guild, channel_id=GENERAL, system_prompt="x")
    client.force_login(bob)
    response = client.post(remove_url(guild), **HTMX)  # hx-confirm asked in the browser
    assert response.status_code == 200 and "Channel override removed." in response.content.decode()
    assert not ChannelSettings.objects.exists()


def test_it_checks_membership(client, guild, dave):
    client.force_login(dave)
    assert client.post(url(guild), data()).status_code == 404
    assert client.post(remove_url(guild), {"confirmed": "yes"}).status_code == 404
    assert not ChannelSettings.objects.exists()


def test_it_requires_role(client, guild, carol):
    ChannelSettings.objects.create(guild=guild, channel_id=GENERAL, system_prompt="x")
    client.force_login(carol)
    assert client.get(url(guild)).status_code == 403
    assert client.post(url(guild), data(prompt="y")).status_code == 403
    assert client.post(remove_url(guild), {"confirmed": "yes"}).status_code == 403
    assert ChannelSettings.objects.get().system_prompt == "x"
    page = client.get(reverse("guilds:settings", args=[guild.discord_id])).content.decode()
    assert "Add or change an override" not in page and "Remove</button>" not in page
    assert not AuditLog.objects.exists()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (data(channel_id=999), "Select a valid choice"),
        (data(prompt="x" * 4001), "at most 4000 characters"),
        (data(model="openai/no-such-model"), "Unknown model"),
        (data(prompt=""), "Set a prompt, a model or a conversation mode"),
        (data(mode="shout"), "Select a valid choice"),
        (data(mode="everyone", cooldown="-1"), "greater than or equal to 0"),
        (data(mode="everyone", cooldown="86401"), "less than or equal to 86400"),
        (data(mode="threads", cooldown="10"), "A cooldown applies only when Parley answers every message"),
    ],
)
def test_it_rejects_bad_input(client, guild, bob, payload, message):
    client.force_login(bob)
    response = client.post(url(guild), payload, **HTMX)
    assert response.status_code == 422
    assert message in response.content.decode()
    assert not ChannelSettings.objects.exists()
    assert not AuditLog.objects.exists()


def test_removing_a_missing_override_changes_nothing(client, guild, bob):
    client.force_login(bob)
    response = client.post(remove_url(guild), **HTMX)
    assert "This channel has no override." in response.content.decode()
    assert not AuditLog.objects.exists()
