"""A server's own provider keys, as its calls use them.

    own = server_keys(guild_pk)                 # its stored keys, decrypted: in memory only (SettingsSnapshot)
    keys = Keys(own=own, instance=not registry.server_keys_required())
    LLMRequest(..., keys=keys)                  # llm.providers.completion_kwargs picks the key of each attempt

A call to a provider uses the server's own key when it has one, else the instance's (``OPENAI_API_KEY``, ...);
with ``LLM_REQUIRE_SERVER_KEYS`` on, a server without its own key cannot use that provider at all (direct
messages, which belong to no server, keep the instance's keys). The keys are written by ``guilds/provider_keys.py``
(it bumps the settings version, so the bots reload them like any setting).

A key the provider refuses (401 or 403) is reported once: ``key_refused`` marks its row with one conditional
update, so of any number of failing calls, in any number of processes, one reports it (the audit entry here; the
owner's message from the bot, ``botcore/key_alerts.py``). A new key clears the mark.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from django.db import transaction
from django.utils import timezone

import audit
from config import encryption
from llm import registry

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerKey:
    """One of a server's own keys, decrypted. Never logged, never written anywhere: ``repr`` leaves it out."""

    provider: str
    api_key: str = field(repr=False)  # "" when no configured encryption key opens it
    set_at: datetime  # which key a refusal is about (a new key has a new time; re-encryption keeps it)
    refused: bool = False


@dataclass(frozen=True)
class Keys:
    """The API keys one call may use: the server's own by provider, and whether the instance's stand in."""

    own: Mapping[str, ServerKey] = field(default_factory=lambda: MappingProxyType({}))
    instance: bool = True  # False: LLM_REQUIRE_SERVER_KEYS, and the call is a server's

    def api_key(self, provider: str) -> str | None:
        """The key an attempt at ``provider`` sends (None: none may be used)."""
        own = self.own.get(provider)
        if own is not None:
            return own.api_key or None
        return registry.provider_config(provider)["api_key"] if self.instance else None


INSTANCE_KEYS = Keys()  # a call that is no server's (direct messages, checks)


def key_target(provider: str) -> str:
    """How the audit log names a provider's key."""
    return f"{registry.provider_label(provider)} API key"


def server_keys(guild_pk: int) -> Mapping[str, ServerKey]:
    """The server's stored keys, decrypted (one query). A key no configured encryption key opens stays in the
    mapping with an empty ``api_key``: its calls fail saying so, rather than quietly using the instance's key."""
    # The models are imported here, not at the top: llm.request (and so the runner's child) imports this module
    # before Django has loaded its apps.
    from llm.models import ProviderKey

    found: dict[str, ServerKey] = {}
    for row in ProviderKey.objects.filter(guild_id=guild_pk).only(
        "provider", "encrypted_key", "set_at", "refused_at"
    ):
        try:
            api_key = encryption.decrypt(row.encrypted_key)
        except (encryption.CannotDecrypt, encryption.EncryptionUnavailable) as exc:
            logger.error("the %s key of guild %s cannot be decrypted: %s", row.provider, guild_pk, exc)
            api_key = ""
        found[row.provider] = ServerKey(row.provider, api_key, row.set_at, refused=row.refused_at is not None)
    return MappingProxyType(found)


def own_providers(guild_pk: int | None) -> frozenset[str]:
    """The providers the server has a key of its own for (the model picker and its validation)."""
    from llm.models import ProviderKey

    if guild_pk is None:
        return frozenset()
    return frozenset(ProviderKey.objects.filter(guild_id=guild_pk).values_list("provider", flat=True))


@transaction.atomic
def key_refused(*, guild_pk: int, provider: str, set_at: datetime, status: int | None) -> bool:
    """Mark the server's ``provider`` key (the one set at ``set_at``) as refused by the provider, with one audit
    entry: True the first time, False when it was reported already or has been replaced since."""
    from audit.models import AuditLog
    from llm.models import ProviderKey

    rows = ProviderKey.objects.filter(
        guild_id=guild_pk, provider=provider, set_at=set_at, refused_at__isnull=True
    )
    if not rows.update(refused_at=timezone.now(), refused_status=status):
        return False
    row = ProviderKey.objects.select_related("guild").get(guild_id=guild_pk, provider=provider)
    audit.record(
        action="provider_key.refused",
        guild=row.guild,
        actor_label=AuditLog.ActorKind.SYSTEM,
        target=key_target(provider),
        changes={"key": ["set", f"refused by the provider (HTTP {status})" if status else "refused"]},
    )
    return True
