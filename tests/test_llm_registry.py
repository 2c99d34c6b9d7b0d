from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from llm import registry

ROOT = Path(__file__).resolve().parent.parent
NO_KEYS = {p: {"api_key": None, "api_base": None} for p in ("openai", "anthropic", "gemini", "xai")}


@pytest.fixture
def no_keys(settings):
    settings.LLM_PROVIDERS = {p: dict(c) for p, c in NO_KEYS.items()}
    return settings


@pytest.fixture
def openai_only(no_keys):
    no_keys.LLM_PROVIDERS["openai"]["api_key"] = "sk-test"
    return no_keys


def _bundled_price_map() -> dict:
    # find_spec locates the package without importing it.
    spec = importlib.util.find_spec("litellm")
    assert spec is not None and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "model_prices_and_context_window_backup.json"
    return json.loads(path.read_text(encoding="utf-8"))


def test_prices_match_litellms_bundled_map():
    prices = _bundled_price_map()
    for model in registry.all_models():
        if model.provider == "offline":
            continue
        # litellm keys OpenAI and Anthropic models without the provider prefix, Gemini and xAI ones with it.
        key = model.id if model.id in prices else model.id.split("/", 1)[1]
        entry = prices[key]
        assert entry["litellm_provider"] == model.provider, model.id
        assert entry["mode"] == "chat", model.id
        assert Decimal(repr(entry["input_cost_per_token"])) * 1_000_000 == model.input_price_per_mtok, (
            model.id
        )
        assert Decimal(repr(entry["output_cost_per_token"])) * 1_000_000 == model.output_price_per_mtok, (
            model.id
        )
        assert entry["max_input_tokens"] == model.context_window, model.id
        assert bool(entry.get("supports_vision")) == model.supports_vision, model.id


def test_every_provider_has_models_and_ids_are_unique():
    ids = [m.id for m in registry.all_models()]
    assert len(ids) == len(set(ids))
    for provider in registry.providers():
        assert any(m.provider == provider.id for m in registry.all_models()), provider.id
    assert registry.get_model(registry.OFFLINE_MODEL_ID).input_price_per_mtok == 0
    assert registry.get_model("openai/gpt-4o-mini").label == "GPT-4o mini"
    assert registry.get_model("openai/no-such-model") is None


def test_offline_is_always_available(no_keys):
    assert registry.provider_available("offline")
    assert registry.unavailable_reason("offline") is None
    assert not registry.provider_available("openai")
    assert registry.unavailable_reason("anthropic") == "Set ANTHROPIC_API_KEY to enable Anthropic models"
    assert not registry.provider_available("mystery")


def test_a_provider_is_available_with_a_key(openai_only):
    assert registry.provider_available("openai")
    assert registry.unavailable_reason("openai") is None
    assert not registry.provider_available("gemini")


def test_it_works_before_the_settings_exist(settings):
    del settings.LLM_PROVIDERS
    del settings.LLM_DEFAULT_MODEL
    assert not registry.provider_available("openai")
    assert registry.default_model_id() == registry.OFFLINE_MODEL_ID


def test_choices_are_grouped_by_provider_with_reasons(openai_only):
    groups = registry.choices_grouped()
    assert [label for label, _ in groups] == ["OpenAI", "Anthropic", "Google Gemini", "xAI", "Parley offline"]
    by_label = dict(groups)
    assert all(not o.disabled and o.reason is None for o in by_label["OpenAI"])
    assert all(o.disabled for o in by_label["xAI"])
    assert by_label["xAI"][0].reason == "Set XAI_API_KEY to enable xAI models"
    assert [o.id for o in by_label["Parley offline"]] == [registry.OFFLINE_MODEL_ID]
    assert not by_label["Parley offline"][0].disabled


def test_validate_model_id(openai_only):
    assert registry.validate_model_id("openai/gpt-4.1").id == "openai/gpt-4.1"
    assert registry.validate_model_id(registry.OFFLINE_MODEL_ID).provider == "offline"

    with pytest.raises(ValidationError) as unknown:
        registry.validate_model_id("openai/gpt-2")
    assert unknown.value.code == "unknown_model"
    assert "openai/gpt-2" in unknown.value.messages[0]

    with pytest.raises(ValidationError) as unavailable:
        registry.validate_model_id("anthropic/claude-haiku-4-5")
    assert unavailable.value.code == "model_unavailable"
    assert unavailable.value.messages == [
        "Claude Haiku 4.5 is not available: Set ANTHROPIC_API_KEY to enable Anthropic models."
    ]


def test_default_model_falls_back_to_offline(no_keys):
    no_keys.LLM_DEFAULT_MODEL = "openai/gpt-4o-mini"
    assert registry.default_model_id() == registry.OFFLINE_MODEL_ID
    no_keys.LLM_PROVIDERS["openai"]["api_key"] = "sk-test"
    assert registry.default_model_id() == "openai/gpt-4o-mini"
    no_keys.LLM_DEFAULT_MODEL = "openai/not-offered"
    assert registry.default_model_id() == registry.OFFLINE_MODEL_ID


def test_estimate_cost():
    # gpt-4o-mini: $0.15 in, $0.60 out per million tokens.
    assert registry.estimate_cost("openai/gpt-4o-mini", 1_000_000, 1_000_000) == Decimal("0.75")
    assert registry.estimate_cost("openai/gpt-4o-mini", 1000, 500) == Decimal("0.00045")
    assert registry.estimate_cost("anthropic/claude-opus-4-7", 2000, 1000) == Decimal("0.035")
    assert registry.estimate_cost(registry.OFFLINE_MODEL_ID, 10_000, 10_000) == 0
    assert registry.estimate_cost("openai/not-offered", 10_000, 10_000) == 0


def test_the_registry_never_imports_litellm():
    """The web process imports the registry (and may import the client module) but must never load litellm."""
    code = (
        "import sys, django; django.setup()\n"
        "import llm.registry, llm.client, llm.offline, llm.errors\n"
        "llm.registry.choices_grouped(); llm.registry.default_model_id()\n"
        "assert 'litellm' not in sys.modules, 'litellm was imported'\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings"),
    }
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
