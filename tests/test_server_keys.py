"""How a server's own provider keys are used (llm/keys.py): its calls carry its key, other servers' the instance's;
a key the provider refuses is reported once; with LLM_REQUIRE_SERVER_KEYS a server without its own key is told so;
and the key never reaches a log line, an audit row or a page. The bot's side: tests/test_server_keys_e2e.py."""

from __future__ import annotations

import json
import logging

import pytest
from asgiref.sync import async_to_sync
from cryptography.fernet import Fernet
from django.urls import reverse

from audit.models import AuditLog
from guilds.effective import SettingsSnapshot
from guilds.models import Guild, GuildSettings, Membership
from guilds.provider_keys import provider_key_set
from llm.answering import Asker, answer
from llm.limits import LimitGate
from llm.models import ProviderKey, Usage
from llm.prompting import Turn
from tests.fakes.llm_server import FakeLLM

SERVER_KEY = "sk-server-key-of-the-test-guild-5f1d"
INSTANCE_KEY = "sk-instance-key-of-this-parley-0c3e"
MODEL = "openai/gpt-4o-mini"


@pytest.fixture
def llm(settings):
    settings.PARLEY_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with FakeLLM() as fake:
        settings.LLM_PROVIDERS = {
            **settings.LLM_PROVIDERS,
            "openai": {"api_key": INSTANCE_KEY, "api_base": fake.url},
        }
        settings.LLM_MAX_RETRIES = 0
        yield fake


def playground(client, guild, message: str = "hi"):
    url = reverse("llm:playground", args=[guild.discord_id])
    return client.post(url, {"message": message, "model": MODEL, "system_prompt": ""})


def authorization(request) -> str:
    return request.headers["Authorization"]


def test_the_playground_uses_the_servers_own_key_and_other_servers_the_instances(client, guild, alice, llm):
    other = Guild.objects.create_with_settings(discord_id=999, name="Other")
    Membership.objects.create(user=alice, guild=other, role=Membership.Role.OWNER)
    provider_key_set(guild=guild, actor=alice, provider="openai", api_key=SERVER_KEY)
    client.force_login(alice)
    assert playground(client, guild).context["reply"].text == "echo: hi"
    assert playground(client, other).context["reply"].text == "echo: hi"
    assert [authorization(r) for r in llm.requests] == [f"Bearer {SERVER_KEY}", f"Bearer {INSTANCE_KEY}"]


def test_a_refused_key_is_reported_once_and_never_logged(client, guild, alice, bob, llm, caplog, capfd):
    provider_key_set(guild=guild, actor=alice, provider="openai", api_key=SERVER_KEY)
    llm.enqueue("401-echo", "401-echo")  # the provider quotes the key it refuses
    client.force_login(bob)
    with caplog.at_level(logging.DEBUG):
        pages = [playground(client, guild).content.decode() for _ in range(2)]
    for page in pages:
        assert "OpenAI refused this server&#x27;s API key. A server owner can set a new one" in page
        assert SERVER_KEY not in page
    assert [authorization(r) for r in llm.requests] == [f"Bearer {SERVER_KEY}"] * 2, (
        "never the instance's key"
    )
    [reported] = AuditLog.objects.filter(action="provider_key.refused")
    assert (reported.guild, reported.target) == (guild, "OpenAI API key")
    row = ProviderKey.objects.get()
    assert row.refused_at is not None and row.refused_status == 401
    assert list(Usage.objects.values_list("outcome", flat=True)) == ["provider_error"] * 2
    keys_page = client.get(reverse("llm:keys", args=[guild.discord_id])).content.decode()
    assert "OpenAI refused this server's API key" in keys_page

    logged = [r.getMessage() + (r.exc_text or "") for r in caplog.records]
    assert any("refused the own key of guild" in line for line in logged)
    assert not [line for line in logged if SERVER_KEY in line]
    captured = capfd.readouterr()
    assert SERVER_KEY not in captured.out + captured.err, "nor in the model runner's own logs"
    entries = json.dumps(list(AuditLog.objects.values("target", "changes")))
    assert SERVER_KEY not in entries and row.encrypted_key not in entries


def test_an_operator_sees_the_providers_words_without_the_key(client, guild, alice, staff, llm):
    provider_key_set(guild=guild, actor=alice, provider="openai", api_key=SERVER_KEY)
    llm.enqueue("401-echo")
    client.force_login(staff)
    page = playground(client, guild).content.decode()
    assert "Incorrect API key provided: [redacted] (fake)" in page and SERVER_KEY not in page


def test_when_servers_must_bring_their_own_keys_a_server_without_one_is_told(
    client, guild, alice, llm, settings
):
    settings.LLM_REQUIRE_SERVER_KEYS = True
    client.force_login(alice)
    response = playground(client, guild)
    assert response.status_code == 422
    assert "This server needs its own OpenAI API key: an owner adds it on the Keys page" in str(
        response.context["form"].errors["model"]
    )
    # A server whose stored model needs a key it lacks (the bot's case) gets the notice, and nothing is called.
    GuildSettings.objects.filter(guild=guild).update(model=MODEL)
    guild.settings.refresh_from_db()
    outcome = async_to_sync(answer)(
        settings=SettingsSnapshot.of(guild, with_keys=True).effective(None),
        turns=[Turn(role="user", text="hi")],
        asker=Asker(4242, 7, Usage.Source.DISCORD),
        gate=LimitGate(),
        record_later=False,
    )
    assert outcome.notice == (
        "This server needs its own OpenAI API key for this model: a server owner can add one in the Parley "
        "dashboard (Keys)."
    )
    assert Usage.objects.get().outcome == "unavailable" and llm.requests == []
    # Direct messages belong to no server: the instance's keys answer them.
    assert SettingsSnapshot.for_dm().effective(None).keys.instance
    provider_key_set(guild=guild, actor=alice, provider="openai", api_key=SERVER_KEY)
    assert playground(client, guild).context["reply"].text == "echo: hi"
    assert authorization(llm.requests[0]) == f"Bearer {SERVER_KEY}"
