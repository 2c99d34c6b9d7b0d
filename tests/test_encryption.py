"""config/encryption.py: the servers' own provider keys are stored as Fernet tokens under PARLEY_ENCRYPTION_KEY;
several keys rotate; whatever is decrypted stays out of the logs; the doctor checks that every stored key opens."""

from __future__ import annotations

import logging

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from config import encryption
from config.env import fernet_keys
from config.logging import REDACTED, RedactSecretsFilter
from guilds.provider_keys import provider_key_set
from llm import checks
from llm.models import ProviderKey

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()
SECRET = "sk-a-server-key-for-encryption-tests"


def test_a_secret_round_trips_and_is_not_stored_in_the_clear(settings):
    settings.PARLEY_ENCRYPTION_KEYS = [NEW]
    token = encryption.encrypt(SECRET)
    assert SECRET not in token and token != encryption.encrypt(SECRET), "a fresh IV every time"
    assert encryption.decrypt(token) == SECRET


def test_the_first_key_encrypts_and_every_key_decrypts(settings):
    settings.PARLEY_ENCRYPTION_KEYS = [OLD]
    old_token = encryption.encrypt(SECRET)
    settings.PARLEY_ENCRYPTION_KEYS = [NEW, OLD]
    assert encryption.decrypt(old_token) == SECRET
    assert not encryption.encrypted_with_first_key(old_token)
    rotated = encryption.rotate(old_token)
    assert encryption.encrypted_with_first_key(rotated)
    settings.PARLEY_ENCRYPTION_KEYS = [NEW]
    assert encryption.decrypt(rotated) == SECRET
    with pytest.raises(encryption.CannotDecrypt):
        encryption.decrypt(old_token)
    with pytest.raises(encryption.CannotDecrypt):
        encryption.decrypt("not a token")


def test_without_a_key_nothing_is_encrypted(settings):
    settings.PARLEY_ENCRYPTION_KEYS = []
    assert not encryption.configured()
    with pytest.raises(encryption.EncryptionUnavailable, match="PARLEY_ENCRYPTION_KEY"):
        encryption.encrypt(SECRET)


def test_the_setting_takes_comma_separated_fernet_keys_and_never_echoes_a_bad_one():
    assert fernet_keys("PARLEY_ENCRYPTION_KEY", f" {NEW} , {OLD} ") == [NEW, OLD]
    assert fernet_keys("PARLEY_ENCRYPTION_KEY", None) == []
    with pytest.raises(ImproperlyConfigured) as raised:
        fernet_keys("PARLEY_ENCRYPTION_KEY", f"{NEW},not-a-fernet-key-but-a-secret")
    message = str(raised.value)
    assert "PARLEY_ENCRYPTION_KEY: key 2 is not a Fernet key" in message
    assert "Fernet.generate_key()" in message and "not-a-fernet-key" not in message


def test_a_decrypted_secret_is_redacted_from_every_log_line_afterwards(settings):
    settings.PARLEY_ENCRYPTION_KEYS = [NEW]
    secret = "sk-decrypted-then-logged-by-mistake-91"
    redact = RedactSecretsFilter()
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "provider said: %s", (secret,), None)
    redact.filter(record)
    assert secret in record.getMessage(), "not a secret this process knows yet"
    encryption.decrypt(encryption.encrypt(secret))
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "provider said: %s", (secret,), None)
    redact.filter(record)
    assert record.getMessage() == f"provider said: {REDACTED}"


# --- parley_doctor: every stored key decrypts (llm/checks.py) ----------------------------------------------------
def ids(found) -> list[str]:
    return [message.id or "" for message in found]


def test_the_doctor_says_how_to_make_a_key_when_none_is_set(db, settings):
    settings.PARLEY_ENCRYPTION_KEYS = []
    [info] = checks.check_server_keys()
    assert info.id == "parley.I068" and encryption.GENERATE_COMMAND in info.hint
    assert encryption.GENERATE_COMMAND == (
        'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
    )
    settings.LLM_REQUIRE_SERVER_KEYS = True
    assert ids(checks.check_server_keys()) == ["parley.E066"]


def test_the_doctor_checks_that_every_stored_key_decrypts(guild, alice, settings):
    settings.PARLEY_ENCRYPTION_KEYS = [OLD]
    provider_key_set(guild=guild, actor=alice, provider="openai", api_key=SECRET)
    assert [m.msg for m in checks.check_server_keys()] == ["1 stored server key(s), all decrypt"]
    settings.PARLEY_ENCRYPTION_KEYS = [NEW, OLD]
    assert ids(checks.check_server_keys()) == ["parley.W067"], "still under the older key: rotate"
    settings.PARLEY_ENCRYPTION_KEYS = [NEW]
    [error] = checks.check_server_keys()
    assert error.id == "parley.E065" and f"openai of guild {guild.discord_id}" in error.msg
    settings.PARLEY_ENCRYPTION_KEYS = []
    assert ids(checks.check_server_keys()) == ["parley.E065"]
    assert SECRET not in repr(checks.check_server_keys())
    assert ProviderKey.objects.count() == 1
