"""``manage.py rotate_encryption_key``: every stored server key re-encrypted under the first key of
PARLEY_ENCRYPTION_KEY, so that the older key can be dropped; nothing changes when a stored key cannot be opened."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError

from config import encryption
from guilds.models import Guild
from guilds.provider_keys import provider_key_set
from llm import checks
from llm.models import ProviderKey

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def test_it_re_encrypts_every_key_under_the_new_key(guild, alice, settings, capsys):
    settings.PARLEY_ENCRYPTION_KEYS = [OLD]
    other = Guild.objects.create_with_settings(
        discord_id=999, name="Other", owner_discord_id=alice.discord_id
    )
    provider_key_set(guild=guild, actor=alice, provider="openai", api_key="sk-first-server-key")
    provider_key_set(guild=other, actor=alice, provider="xai", api_key="xai-second-server-key")
    before = dict(ProviderKey.objects.values_list("pk", "set_at"))

    settings.PARLEY_ENCRYPTION_KEYS = [NEW, OLD]
    call_command("rotate_encryption_key")
    assert "OK: 2 server key(s) now encrypted with the first key" in capsys.readouterr().out

    settings.PARLEY_ENCRYPTION_KEYS = [NEW]  # the old key is gone
    plain = {row.provider: encryption.decrypt(row.encrypted_key) for row in ProviderKey.objects.all()}
    assert plain == {"openai": "sk-first-server-key", "xai": "xai-second-server-key"}
    assert dict(ProviderKey.objects.values_list("pk", "set_at")) == before, "the same keys, as set"
    assert [m.msg for m in checks.check_server_keys()] == ["2 stored server key(s), all decrypt"]


def test_it_changes_nothing_when_a_key_cannot_be_opened(guild, alice, settings):
    settings.PARLEY_ENCRYPTION_KEYS = [OLD]
    provider_key_set(guild=guild, actor=alice, provider="openai", api_key="sk-first-server-key")
    stored = ProviderKey.objects.get().encrypted_key
    settings.PARLEY_ENCRYPTION_KEYS = [NEW]  # the old key was dropped too early
    with pytest.raises(CommandError, match=rf"openai key of guild {guild.discord_id}.*nothing was changed"):
        call_command("rotate_encryption_key")
    assert ProviderKey.objects.get().encrypted_key == stored


def test_it_needs_a_key(db, settings):
    settings.PARLEY_ENCRYPTION_KEYS = []
    with pytest.raises(CommandError, match=r"PARLEY_ENCRYPTION_KEY is not set.*Fernet\.generate_key"):
        call_command("rotate_encryption_key")
