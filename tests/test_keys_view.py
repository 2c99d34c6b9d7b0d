"""/dashboard/guilds/<id>/keys/: a server's own provider keys. Owners set and remove them (encrypted, audited
without the key, the bots told through the settings version); admins see them masked; users and outsiders do not."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet
from django.urls import reverse

from audit.models import AuditLog
from config import encryption
from guilds.models import GuildSettings
from guilds.provider_keys import provider_key_set
from llm.keys import key_refused, server_keys
from llm.models import ProviderKey
from tests.conftest import settings_post_data
from tests.test_audit_view import _body

HTMX = {"HTTP_HX_REQUEST": "true"}
KEY = "sk-server-own-key-for-tests-7Qx2"
ENCRYPTION_KEY = Fernet.generate_key().decode()


@pytest.fixture(autouse=True)
def encryption_key(settings):
    settings.PARLEY_ENCRYPTION_KEYS = [ENCRYPTION_KEY]


def url(guild) -> str:
    return reverse("llm:keys", args=[guild.discord_id])


def remove_url(guild, provider: str = "openai") -> str:
    return reverse("llm:key_remove", args=[guild.discord_id, provider])


def version(guild) -> int:
    return GuildSettings.objects.get(guild=guild).version


def audit_json(guild) -> str:
    return json.dumps(list(AuditLog.objects.filter(guild=guild).values("action", "target", "changes")))


def test_it_works(client, guild, alice):
    client.force_login(alice)
    before = version(guild)
    response = client.post(url(guild), {"provider": "openai", "api_key": f"  {KEY}\n"})
    assert response.status_code == 302 and response["Location"] == url(guild)
    row = ProviderKey.objects.get(guild=guild, provider="openai")
    assert row.last4 == "7Qx2" and row.set_by == alice
    assert KEY not in row.encrypted_key and encryption.decrypt(row.encrypted_key) == KEY
    assert version(guild) == before + 1, "the bots reload the settings, and the key with them"
    page = client.get(url(guild)).content.decode()
    assert "••••7Qx2" in page and "OpenAI key saved" in page and KEY not in page
    [entry] = AuditLog.objects.filter(guild=guild)
    assert (entry.action, entry.actor, entry.target, entry.changes) == (
        "provider_key.set",
        alice,
        "OpenAI API key",
        {"key": [None, "set"]},
    )

    client.post(url(guild), {"provider": "openai", "api_key": KEY + "-2"})
    assert AuditLog.objects.latest("id").changes == {"key": ["set", "replaced"]}
    assert client.post(remove_url(guild), {"confirmed": "yes"}).status_code == 302
    assert not ProviderKey.objects.filter(guild=guild).exists()
    assert AuditLog.objects.latest("id").changes == {"key": ["set", None]}
    assert version(guild) == before + 3
    stored = audit_json(guild)
    assert KEY not in stored and row.encrypted_key not in stored and "7Qx2" not in stored


def test_it_works_with_htmx(client, guild, alice):
    client.force_login(alice)
    response = client.post(url(guild), {"provider": "anthropic", "api_key": KEY}, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and html.lstrip().startswith('<div id="keys">')
    assert "Anthropic key saved" in html and "••••7Qx2" in html and KEY not in html
    response = client.post(remove_url(guild, "anthropic"), **HTMX)  # hx-confirm asked already
    assert "Anthropic key removed" in response.content.decode()
    assert not ProviderKey.objects.exists()


def test_removing_asks_for_confirmation_without_javascript(client, guild, alice):
    provider_key_set(guild=guild, actor=alice, provider="openai", api_key=KEY)
    client.force_login(alice)
    page = client.post(remove_url(guild)).content.decode()
    assert "Remove this server&#x27;s OpenAI key?" in page
    assert ProviderKey.objects.exists()


def test_admins_see_the_keys_masked_and_cannot_change_them(client, guild, alice, bob):
    provider_key_set(guild=guild, actor=alice, provider="openai", api_key=KEY)
    client.force_login(bob)
    page = client.get(url(guild)).content.decode()
    assert "••••7Qx2" in page and KEY not in page
    assert 'name="api_key"' not in page and "Remove the key" not in page
    assert "Only the server's owners can set or remove them." in page
    assert (
        'href="/dashboard/guilds/111111111111111111/keys/"'
        in client.get(reverse("guilds:settings", args=[guild.discord_id])).content.decode()
    ), "the sidebar links the page"


def test_it_checks_membership(client, guild, alice, dave):
    provider_key_set(guild=guild, actor=alice, provider="openai", api_key=KEY)
    client.force_login(dave)
    assert client.get(url(guild)).status_code == 404
    assert client.post(url(guild), {"provider": "openai", "api_key": "sk-dave-was-here"}).status_code == 404
    assert client.post(remove_url(guild), {"confirmed": "yes"}).status_code == 404
    assert ProviderKey.objects.get().last4 == "7Qx2"


def test_it_requires_role(client, guild, alice, bob, carol):
    provider_key_set(guild=guild, actor=alice, provider="openai", api_key=KEY)
    client.force_login(carol)
    assert client.get(url(guild)).status_code == 403
    client.force_login(bob)
    assert client.post(url(guild), {"provider": "openai", "api_key": "sk-bob-was-here"}).status_code == 403
    assert client.post(remove_url(guild), {"confirmed": "yes"}).status_code == 403
    assert ProviderKey.objects.get().last4 == "7Qx2"
    assert AuditLog.objects.count() == 1


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"provider": "openai", "api_key": ""}, "api_key", "This field is required."),
        ({"provider": "openai", "api_key": "sk with spaces inside"}, "api_key", "no spaces"),
        (
            {"provider": "openai", "api_key": "sk-é-accented-key"},
            "api_key",
            "no spaces or special characters",
        ),
        ({"provider": "openai", "api_key": "short"}, "api_key", "8 to 500 characters"),
        ({"provider": "offline", "api_key": KEY}, "provider", "Parley offers no such provider"),
        ({"provider": "mistral", "api_key": KEY}, "provider", "Parley offers no such provider"),
    ],
)
def test_it_rejects_bad_input(client, guild, alice, data, field, message):
    client.force_login(alice)
    response = client.post(url(guild), data, **HTMX)
    assert response.status_code == 422
    form = next((row.form for row in response.context["rows"] if row.form.is_bound), None)
    shown = " ".join(form.errors[field]) if form is not None else response.content.decode()
    assert message in shown, (
        "on the provider's form, or above the list for a provider the page does not offer"
    )
    assert 'value="sk' not in response.content.decode(), "a key is never sent back, not even a wrong one"
    assert not ProviderKey.objects.exists() and not AuditLog.objects.exists()


def test_without_an_encryption_key_nothing_is_stored_and_the_owner_is_told(client, guild, alice, settings):
    settings.PARLEY_ENCRYPTION_KEYS = []
    client.force_login(alice)
    page = client.get(url(guild)).content.decode()
    assert "This Parley has no encryption key" in page
    response = client.post(url(guild), {"provider": "openai", "api_key": KEY}, **HTMX)
    assert response.status_code == 422
    assert "no encryption key (PARLEY_ENCRYPTION_KEY)" in response.content.decode()
    assert not ProviderKey.objects.exists() and not AuditLog.objects.exists()


def test_a_refused_key_shows_on_the_keys_and_settings_pages_until_a_new_key_is_set(client, guild, alice, bob):
    row = provider_key_set(guild=guild, actor=alice, provider="openai", api_key=KEY)
    assert key_refused(guild_pk=guild.pk, provider="openai", set_at=row.set_at, status=401)
    assert not key_refused(guild_pk=guild.pk, provider="openai", set_at=row.set_at, status=401), "once"
    client.force_login(bob)
    for page_url in (url(guild), reverse("guilds:settings", args=[guild.discord_id])):
        page = client.get(page_url).content.decode()
        assert "OpenAI refused this server's API key" in page and "HTTP 401" in page
        assert "until an owner sets a new key" in page
    refused = AuditLog.objects.get(action="provider_key.refused")
    assert refused.changes == {"key": ["set", "refused by the provider (HTTP 401)"]}

    client.force_login(alice)
    client.post(url(guild), {"provider": "openai", "api_key": KEY + "-new"})
    assert ProviderKey.objects.get().refused_at is None
    assert "refused this server" not in client.get(url(guild)).content.decode()
    assert KEY not in audit_json(guild)


def test_the_audit_log_names_the_key_changes(client, guild, alice):
    provider_key_set(guild=guild, actor=alice, provider="xai", api_key=KEY)
    client.force_login(alice)
    page = client.get(reverse("audit:log", args=[guild.discord_id])).content.decode()
    assert "Provider key set" in page and "xAI API key" in page and KEY not in page
    exported = client.get(reverse("audit:export", args=[guild.discord_id]) + "?format=json")
    text = _body(exported).decode()
    assert "provider_key.set" in text and KEY not in text


def test_the_model_picker_offers_a_provider_through_the_servers_own_key(client, guild, alice, settings):
    settings.LLM_PROVIDERS = {}  # the instance has no key at all
    client.force_login(alice)
    page = client.get(reverse("guilds:settings", args=[guild.discord_id])).content.decode()
    assert 'value="openai/gpt-4o-mini" disabled' in page
    provider_key_set(guild=guild, actor=alice, provider="openai", api_key=KEY)
    page = client.get(reverse("guilds:settings", args=[guild.discord_id])).content.decode()
    assert 'value="openai/gpt-4o-mini">' in page and 'value="anthropic/claude-haiku-4-5" disabled' in page
    data = settings_post_data(guild, model="openai/gpt-4o-mini")
    assert client.post(reverse("guilds:settings", args=[guild.discord_id]), data).status_code == 302
    assert GuildSettings.objects.get(guild=guild).model == "openai/gpt-4o-mini"


def test_when_servers_must_bring_their_own_keys_the_picker_and_the_save_say_so(
    client, guild, alice, settings
):
    settings.LLM_REQUIRE_SERVER_KEYS = True
    settings.LLM_PROVIDERS = {"openai": {"api_key": "sk-instance-key-1234", "api_base": None}}
    client.force_login(alice)
    settings_url = reverse("guilds:settings", args=[guild.discord_id])
    page = client.get(settings_url).content.decode()
    reason = "This server needs its own OpenAI API key: an owner adds it on the Keys page"
    assert f'value="openai/gpt-4o-mini" disabled title="{reason}"' in page
    response = client.post(settings_url, settings_post_data(guild, model="openai/gpt-4o-mini"), **HTMX)
    assert response.status_code == 422 and reason in response.content.decode()
    assert (
        "Required: this server cannot use OpenAI models without its own key."
        in client.get(url(guild)).content.decode()
    )
    provider_key_set(guild=guild, actor=alice, provider="openai", api_key=KEY)
    assert client.post(settings_url, settings_post_data(guild, model="openai/gpt-4o-mini")).status_code == 302


def test_keys_are_decrypted_only_into_memory(guild, alice):
    provider_key_set(guild=guild, actor=alice, provider="gemini", api_key=KEY)
    [key] = server_keys(guild.pk).values()
    assert key.api_key == KEY and KEY not in repr(key)
