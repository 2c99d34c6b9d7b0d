"""Secrets Parley stores, encrypted at rest: a server's own provider keys (``llm.models.ProviderKey``).

    token = encrypt("sk-...")        # EncryptionUnavailable when no key is configured
    decrypt(token)                   # "sk-..."; CannotDecrypt when no configured key opens it

Fernet (AES-128-CBC with an HMAC, from ``cryptography``) under ``settings.PARLEY_ENCRYPTION_KEYS``, read from
``PARLEY_ENCRYPTION_KEY`` or ``PARLEY_ENCRYPTION_KEY_FILE``: comma-separated keys make a ``MultiFernet``, whose first
key encrypts and every key decrypts. To change keys, put the new one first, run ``manage.py
rotate_encryption_key`` (``rotate`` re-encrypts under the first key), then drop the old one. Everything decrypted
is also kept out of this process's logs (``config.logging.redact_from_now_on``).

``cryptography`` is imported on first use, so a process that never touches a stored secret does not load it.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from django.conf import settings

from config.env import FERNET_KEY_HINT
from config.logging import redact_from_now_on

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

GENERATE_COMMAND = FERNET_KEY_HINT.removeprefix("generate one with: ")


class EncryptionUnavailable(Exception):
    """No encryption key is configured, so nothing can be stored encrypted."""

    def __init__(self) -> None:
        super().__init__(
            "This Parley has no encryption key (PARLEY_ENCRYPTION_KEY), so it cannot store secrets; its operator "
            "can set one (manage.py parley_doctor says how)."
        )


class CannotDecrypt(Exception):
    """No configured key opens this value: the key that encrypted it is gone, or the value was altered."""


def configured() -> bool:
    return bool(getattr(settings, "PARLEY_ENCRYPTION_KEYS", None))


@functools.lru_cache(maxsize=4)
def _multi_fernet(keys: tuple[str, ...]) -> MultiFernet:
    from cryptography.fernet import Fernet, MultiFernet

    return MultiFernet([Fernet(key) for key in keys])


def _fernet() -> MultiFernet:
    if not configured():
        raise EncryptionUnavailable
    return _multi_fernet(tuple(settings.PARLEY_ENCRYPTION_KEYS))


def encrypt(secret: str) -> str:
    """``secret`` encrypted under the first configured key (a Fernet token: url-safe base64 text)."""
    return _fernet().encrypt(secret.encode()).decode("ascii")


def decrypt(token: str) -> str:
    """The secret in ``token``; ``CannotDecrypt`` when no configured key opens it (``EncryptionUnavailable``
    when none is configured)."""
    from cryptography.fernet import InvalidToken

    try:
        secret = _fernet().decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError) as exc:
        raise CannotDecrypt("no configured encryption key opens this value") from exc
    redact_from_now_on(secret)
    return secret


def rotate(token: str) -> str:
    """``token`` re-encrypted under the first configured key (``CannotDecrypt`` when no key opens it)."""
    from cryptography.fernet import InvalidToken

    try:
        return _fernet().rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError) as exc:
        raise CannotDecrypt("no configured encryption key opens this value") from exc


def encrypted_with_first_key(token: str) -> bool:
    """Whether the first configured key opens ``token`` (after a rotation, every stored value should)."""
    from cryptography.fernet import Fernet, InvalidToken

    if not configured():
        return False
    try:
        Fernet(settings.PARLEY_ENCRYPTION_KEYS[0]).decrypt(token.encode("ascii"))
    except (InvalidToken, UnicodeError):
        return False
    return True
