"""The writes to a server's own provider keys: set (or replace) and remove, by its owners.

Like every configuration write (``guilds/services.py``), each one is a transaction that saves the row, writes one
audit entry and bumps ``GuildSettings.version``, so the bots load the new key before their next message in that
server. The key is encrypted before it is stored (``config.encryption``) and never appears in the audit entry,
which says only that a key was set, replaced or removed. How calls use the keys: ``llm/keys.py``.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

import audit
from accounts.models import User
from config import encryption
from guilds.models import Guild, Membership
from guilds.services import _actor_label, _settings_changed
from llm import registry
from llm.keys import key_target
from llm.models import ProviderKey

KEY_MIN_LENGTH, KEY_MAX_LENGTH = 8, 500


def _owner(guild: Guild, actor: User) -> Membership:
    acting = Membership.objects.acting(actor, guild)
    if acting is None or not acting.can_manage_keys:
        raise PermissionDenied("Only this server's owners manage its provider keys.")
    return acting


def _check_provider(provider: str) -> None:
    if provider not in {p.id for p in registry.key_providers()}:
        raise ValidationError({"provider": "Pick a provider from the list."})


def _check_key(api_key: str) -> None:
    if not api_key:
        raise ValidationError({"api_key": "Paste the API key."})
    # Providers' keys are printable ASCII without spaces; anything else is a copy-and-paste accident.
    if not (api_key.isascii() and api_key.isprintable()) or " " in api_key:
        raise ValidationError({"api_key": "An API key has no spaces or special characters: paste it again."})
    if not KEY_MIN_LENGTH <= len(api_key) <= KEY_MAX_LENGTH:
        raise ValidationError(
            {
                "api_key": f"An API key is {KEY_MIN_LENGTH} to {KEY_MAX_LENGTH} characters long: paste it again."
            }
        )


@transaction.atomic
def provider_key_set(
    *, guild: Guild, actor: User, provider: str, api_key: str, ip: str | None = None
) -> ProviderKey:
    """Store ``api_key`` (encrypted) as the server's own key for ``provider``, replacing any it had; a key the
    provider had refused is replaced, and so is the refusal."""
    acting = _owner(guild, actor)
    _check_provider(provider)
    api_key = api_key.strip()
    _check_key(api_key)
    try:
        encrypted = encryption.encrypt(api_key)
    except encryption.EncryptionUnavailable as exc:
        raise ValidationError(str(exc), code="no_encryption_key") from None
    row = ProviderKey.objects.select_for_update().filter(guild=guild, provider=provider).first()
    before = "set" if row is not None else None
    row = row or ProviderKey(guild=guild, provider=provider)
    row.encrypted_key, row.last4 = encrypted, api_key[-4:]
    row.set_by, row.set_at = actor, timezone.now()
    row.refused_at = row.refused_status = None
    row.save()
    _settings_changed(guild)
    audit.record(
        action="provider_key.set",
        guild=guild,
        actor=actor,
        actor_label=_actor_label(actor, acting),
        target=key_target(provider),
        changes={"key": [before, "replaced" if before else "set"]},
        ip=ip,
    )
    return row


@transaction.atomic
def provider_key_remove(*, guild: Guild, actor: User, provider: str, ip: str | None = None) -> None:
    """Forget the server's own key for ``provider``: its calls use the instance's key again (or, with
    LLM_REQUIRE_SERVER_KEYS, cannot use that provider)."""
    acting = _owner(guild, actor)
    _check_provider(provider)
    row = ProviderKey.objects.select_for_update().filter(guild=guild, provider=provider).first()
    if row is None:
        raise ValidationError("This server has no key of its own for that provider.")
    row.delete()
    _settings_changed(guild)
    audit.record(
        action="provider_key.remove",
        guild=guild,
        actor=actor,
        actor_label=_actor_label(actor, acting),
        target=key_target(provider),
        changes={"key": ["set", None]},
        ip=ip,
    )
