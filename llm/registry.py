"""The models Parley offers, their prices, and which providers are configured.

This module is imported by the web process, which must never import litellm (about 7 s of CPU): everything here
is plain data and settings look-ups. Settings are read at call time, so tests can change them per test.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError

OFFLINE_MODEL_ID = "offline/parley-offline"

# Costs are kept to this many places (1e-8 USD); the cheapest curated price is $0.10 per million tokens.
COST_QUANTUM = Decimal("0.00000001")
_PER_MTOK = Decimal(1_000_000)


@dataclass(frozen=True)
class ProviderInfo:
    id: str
    label: str
    env_var: str | None  # the variable that enables it; None for the always-available offline model


@dataclass(frozen=True)
class ModelInfo:
    id: str  # the litellm model name, "<provider>/<model>"
    provider: str
    label: str
    context_window: int
    input_price_per_mtok: Decimal  # USD per million input tokens
    output_price_per_mtok: Decimal  # USD per million output tokens
    supports_vision: bool


@dataclass(frozen=True)
class ModelChoice:
    """One option of the model picker: disabled (with the reason) when its provider has no API key."""

    id: str
    label: str
    disabled: bool
    reason: str | None
    model: ModelInfo


_PROVIDERS: tuple[ProviderInfo, ...] = (
    ProviderInfo("openai", "OpenAI", "OPENAI_API_KEY"),
    ProviderInfo("anthropic", "Anthropic", "ANTHROPIC_API_KEY"),
    ProviderInfo("gemini", "Google Gemini", "GEMINI_API_KEY"),
    ProviderInfo("xai", "xAI", "XAI_API_KEY"),
    ProviderInfo("offline", "Parley offline", None),
)
_PROVIDER_BY_ID = {p.id: p for p in _PROVIDERS}


def _m(
    model_id: str, label: str, context: int, price_in: str, price_out: str, vision: bool = True
) -> ModelInfo:
    return ModelInfo(
        id=model_id,
        provider=model_id.split("/", 1)[0],
        label=label,
        context_window=context,
        input_price_per_mtok=Decimal(price_in),
        output_price_per_mtok=Decimal(price_out),
        supports_vision=vision,
    )


# Prices and context windows are copied from litellm 1.110.2's bundled price map,
# site-packages/litellm/model_prices_and_context_window_backup.json (input_cost_per_token and
# output_cost_per_token times 1e6, max_input_tokens), under the same keys, so litellm.completion_cost agrees with
# estimate_cost(). The map has no direct-API entries any more for claude-3-5-haiku, claude-sonnet-4,
# gemini-2.0-flash or grok-3 (retired); gemini-2.5-pro/-flash are marked deprecated on 2026-12-01. When
# litellm is upgraded, re-check these numbers against the new file (tests/test_llm_registry.py does).
_MODELS: tuple[ModelInfo, ...] = (
    _m("openai/gpt-4o-mini", "GPT-4o mini", 128_000, "0.15", "0.60"),
    _m("openai/gpt-4.1-mini", "GPT-4.1 mini", 1_047_576, "0.40", "1.60"),
    _m("openai/gpt-4.1", "GPT-4.1", 1_047_576, "2.00", "8.00"),
    _m("openai/gpt-4o", "GPT-4o", 128_000, "2.50", "10.00"),
    _m("openai/gpt-5.4-mini", "GPT-5.4 mini", 272_000, "0.75", "4.50"),
    _m("openai/gpt-5.4", "GPT-5.4", 1_050_000, "2.50", "15.00"),
    _m("anthropic/claude-haiku-4-5", "Claude Haiku 4.5", 200_000, "1.00", "5.00"),
    _m("anthropic/claude-sonnet-4-6", "Claude Sonnet 4.6", 1_000_000, "3.00", "15.00"),
    _m("anthropic/claude-sonnet-5", "Claude Sonnet 5", 1_000_000, "2.00", "10.00"),
    _m("anthropic/claude-opus-4-7", "Claude Opus 4.7", 1_000_000, "5.00", "25.00"),
    _m("gemini/gemini-2.5-flash-lite", "Gemini 2.5 Flash-Lite", 1_048_576, "0.10", "0.40"),
    _m("gemini/gemini-3-flash-preview", "Gemini 3 Flash (preview)", 1_048_576, "0.50", "3.00"),
    _m("gemini/gemini-3.5-flash", "Gemini 3.5 Flash", 1_048_576, "1.50", "9.00"),
    _m("gemini/gemini-3.1-pro-preview", "Gemini 3.1 Pro (preview)", 1_048_576, "2.00", "12.00"),
    _m("xai/grok-4.20-non-reasoning", "Grok 4.20 (fast)", 1_000_000, "1.25", "2.50"),
    _m("xai/grok-4.3", "Grok 4.3", 1_000_000, "1.25", "2.50"),
    _m("xai/grok-4.7", "Grok 4.7", 500_000, "2.00", "6.00"),
    _m(OFFLINE_MODEL_ID, "Parley offline (echo, no API key needed)", 32_000, "0", "0", vision=False),
)
_MODEL_BY_ID = {m.id: m for m in _MODELS}


def all_models() -> tuple[ModelInfo, ...]:
    return _MODELS


def get_model(model_id: str) -> ModelInfo | None:
    return _MODEL_BY_ID.get(model_id)


def display_name(model_id: str) -> str:
    """A model as the dashboard names it: "Claude Haiku 4.5 (Anthropic)"; an id we do not list stays an id."""
    info = _MODEL_BY_ID.get(model_id)
    if info is None:
        return model_id
    provider = _PROVIDER_BY_ID[info.provider]
    return info.label if provider.env_var is None else f"{info.label} ({provider.label})"


def any_provider_configured() -> bool:
    """True when at least one real provider (not the offline model) has an API key."""
    return any(p.env_var is not None and provider_available(p.id) for p in _PROVIDERS)


def providers() -> tuple[ProviderInfo, ...]:
    """Providers in display order: the paid ones first, the offline model last."""
    return _PROVIDERS


def provider_label(provider: str) -> str:
    """ "OpenAI" for "openai"; an unknown id stays an id."""
    info = _PROVIDER_BY_ID.get(provider)
    return info.label if info else provider


def key_providers() -> tuple[ProviderInfo, ...]:
    """The providers a server may set a key of its own for: all but the offline model."""
    return tuple(p for p in _PROVIDERS if p.env_var is not None)


def server_keys_required() -> bool:
    """``LLM_REQUIRE_SERVER_KEYS``: a server uses a provider only with its own key (llm/keys.py)."""
    return bool(getattr(settings, "LLM_REQUIRE_SERVER_KEYS", False))


def provider_of(model_id: str) -> str | None:
    """The provider of any "<provider>/<name>" id, curated or not (an operator may configure a newer model)."""
    provider = model_id.split("/", 1)[0] if "/" in model_id else ""
    return provider if provider in _PROVIDER_BY_ID else None


def provider_config(provider: str) -> dict[str, str | None]:
    """``{"api_key": ..., "api_base": ...}`` for a provider, from ``settings.LLM_PROVIDERS``."""
    configured = getattr(settings, "LLM_PROVIDERS", {}) or {}
    entry = configured.get(provider) or {}
    return {"api_key": entry.get("api_key") or None, "api_base": entry.get("api_base") or None}


def provider_available(provider: str) -> bool:
    if provider == "offline":
        return True
    if provider not in _PROVIDER_BY_ID:
        return False
    return provider_config(provider)["api_key"] is not None


def unavailable_reason(provider: str, own: Collection[str] | None = None) -> str | None:
    """Why a provider cannot be used; None when it can. ``own``: for a server, the providers it has a key of its
    own for (llm/keys.py), which it may use whatever the instance has; None: no server's call (the operator's
    view, phrased for the operator)."""
    if own is not None and provider in own and provider in _PROVIDER_BY_ID:
        return None
    info = _PROVIDER_BY_ID.get(provider)
    if own is not None and info is not None and info.env_var is not None and server_keys_required():
        return f"This server needs its own {info.label} API key: an owner adds it on the Keys page"
    if provider_available(provider):
        return None
    if info is None or info.env_var is None:
        return f"Unknown provider {provider!r}"
    return f"Set {info.env_var} to enable {info.label} models"


def choices_grouped(own: Collection[str] | None = None) -> list[tuple[str, list[ModelChoice]]]:
    """The model picker: one group per provider label, in provider order, every curated model listed (``own``: as
    in ``unavailable_reason``)."""
    groups: list[tuple[str, list[ModelChoice]]] = []
    for provider in _PROVIDERS:
        reason = unavailable_reason(provider.id, own)
        options = [
            ModelChoice(id=m.id, label=m.label, disabled=reason is not None, reason=reason, model=m)
            for m in _MODELS
            if m.provider == provider.id
        ]
        groups.append((provider.label, options))
    return groups


def validate_model_id(model_id: str, own: Collection[str] | None = None) -> ModelInfo:
    """The model for ``model_id``; ValidationError when it is not offered or its provider has no key (``own``:
    as in ``unavailable_reason``)."""
    info = get_model(model_id)
    if info is None:
        raise ValidationError(
            "Unknown model %(model)s: pick one from the list.",
            code="unknown_model",
            params={"model": model_id},
        )
    reason = unavailable_reason(info.provider, own)
    if reason is not None:
        raise ValidationError(
            "%(label)s is not available: %(reason)s.",
            code="model_unavailable",
            params={"label": info.label, "reason": reason},
        )
    return info


def default_model_id() -> str:
    """``settings.LLM_DEFAULT_MODEL`` when it is offered and usable, otherwise the offline model."""
    wanted = getattr(settings, "LLM_DEFAULT_MODEL", OFFLINE_MODEL_ID)
    info = get_model(wanted)
    if info is not None and provider_available(info.provider):
        return info.id
    return OFFLINE_MODEL_ID


def estimate_cost(model_id: str, input_tokens: int, output_tokens: int) -> Decimal:
    """USD for a call from the curated prices; 0 for a model we have no price for."""
    info = get_model(model_id)
    if info is None:
        return Decimal(0)
    cost = (
        Decimal(input_tokens) * info.input_price_per_mtok
        + Decimal(output_tokens) * info.output_price_per_mtok
    ) / _PER_MTOK
    return cost.quantize(COST_QUANTUM)
