"""``parley_doctor`` check of the LLM providers and the default model (registered in ``LlmConfig.ready``)."""

from __future__ import annotations

from django.conf import settings
from django.core import checks
from django.core.checks import CheckMessage

from config.checks import is_production
from llm import registry


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
