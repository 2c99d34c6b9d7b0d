"""``parley_doctor`` checks of the LLM providers, the default model and the servers' own provider keys (registered
in ``LlmConfig.ready``)."""

from __future__ import annotations

import contextlib

from django.conf import settings
from django.core import checks
from django.core.checks import CheckMessage
from django.db import DatabaseError

from config import encryption
from config.checks import is_production
from config.probes import database_probe
from llm import registry
from llm.models import ProviderKey


def check_providers() -> list[CheckMessage]:
    topic = "LLM"
    configured = [p.label for p in registry.providers() if p.env_var and registry.provider_available(p.id)]
    wanted = settings.LLM_DEFAULT_MODEL
    provider = registry.provider_of(wanted)
    found: list[CheckMessage] = []
    if provider is None:
        found.append(
            checks.Error(
                f"LLM_DEFAULT_MODEL={wanted!r} names no known provider.",
                hint="Use <provider>/<model> with provider openai, anthropic, gemini, xai or offline.",
                obj=topic,
                id="parley.E061",
            )
        )
    elif not registry.provider_available(provider):
        found.append(
            checks.Error(
                f"LLM_DEFAULT_MODEL={wanted} but its provider has no key: new guilds get the offline model.",
                hint=registry.unavailable_reason(provider),
                obj=topic,
                id="parley.E062",
            )
        )
    if not configured:
        level, id_ = (
            (checks.WARNING, "parley.W063")
            if provider != "offline" or is_production()
            else (checks.INFO, "parley.I064")
        )
        found.append(
            CheckMessage(
                level,
                "no provider key is set: only the offline echo model answers.",
                hint="Set OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY or XAI_API_KEY (or their *_FILE).",
                obj=topic,
                id=id_,
            )
        )
    elif not found:
        found.append(checks.Debug(f"providers: {', '.join(configured)}; default model {wanted}", obj=topic))
    return found


def check_server_keys() -> list[CheckMessage]:
    """The servers' own provider keys: an encryption key to store them, and every stored one opens with it."""
    topic = "Server keys"
    stored: list[tuple[int, str, str]] = []
    if database_probe().ok:  # an unreachable database has a check of its own
        with contextlib.suppress(DatabaseError):  # not migrated yet
            stored = list(ProviderKey.objects.values_list("guild__discord_id", "provider", "encrypted_key"))
    generate = f"Generate one with: {encryption.GENERATE_COMMAND}"
    if not encryption.configured():
        if stored:
            return [
                checks.Error(
                    f"{len(stored)} server key(s) are stored but PARLEY_ENCRYPTION_KEY is not set: "
                    "those servers' calls fail.",
                    hint="Set PARLEY_ENCRYPTION_KEY (or PARLEY_ENCRYPTION_KEY_FILE) to the key that encrypted them.",
                    obj=topic,
                    id="parley.E065",
                )
            ]
        if registry.server_keys_required():
            return [
                checks.Error(
                    "LLM_REQUIRE_SERVER_KEYS is on but PARLEY_ENCRYPTION_KEY is not set: no server can store the "
                    "key it must bring, so only direct messages are answered.",
                    hint=f"Set PARLEY_ENCRYPTION_KEY. {generate}",
                    obj=topic,
                    id="parley.E066",
                )
            ]
        return [
            checks.Info(
                "PARLEY_ENCRYPTION_KEY is not set: server owners cannot store provider keys of their own.",
                hint=f"To let them, set PARLEY_ENCRYPTION_KEY. {generate}",
                obj=topic,
                id="parley.I068",
            )
        ]
    unreadable, older = [], 0
    for guild_id, provider, token in stored:
        if encryption.encrypted_with_first_key(token):
            continue
        try:
            encryption.rotate(token)  # opens it with any configured key, without keeping the secret
            older += 1
        except encryption.CannotDecrypt:
            unreadable.append(f"{provider} of guild {guild_id}")
    found: list[CheckMessage] = []
    if unreadable:
        shown = ", ".join(unreadable[:10]) + (", ..." if len(unreadable) > 10 else "")
        found.append(
            checks.Error(
                f"{len(unreadable)} of {len(stored)} stored server key(s) cannot be decrypted with "
                f"PARLEY_ENCRYPTION_KEY ({shown}): those calls fail.",
                hint="Add the key that encrypted them to PARLEY_ENCRYPTION_KEY (comma-separated, after the new "
                "one) and run manage.py rotate_encryption_key; or their owners set them again.",
                obj=topic,
                id="parley.E065",
            )
        )
    if older:
        found.append(
            checks.Warning(
                f"{older} stored server key(s) are encrypted with an older key of PARLEY_ENCRYPTION_KEY.",
                hint="Run manage.py rotate_encryption_key before removing the older key.",
                obj=topic,
                id="parley.W067",
            )
        )
    if not found:
        found.append(checks.Debug(f"{len(stored)} stored server key(s), all decrypt", obj=topic))
    return found
