"""What a model is asked and what it answers: the two values every caller of ``llm.client`` handles."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from llm.keys import INSTANCE_KEYS, Keys


@dataclass
class LLMRequest:
    model: str  # a registry id, "<provider>/<model>"
    messages: list[dict[str, Any]]  # OpenAI-style; content is a str or a list of parts (text, image_url)
    temperature: float | None = None
    max_tokens: int | None = None
    fallback_model: str | None = None
    keys: Keys = INSTANCE_KEYS  # the API keys the call may use: a server's own, the instance's (llm/keys.py)
    # Filled in by llm.client: the providers that refused the server's own key during this call, with the HTTP
    # status, for llm.answering to report.
    refused_keys: dict[str, int | None] = field(default_factory=dict)


@dataclass
class Reply:
    text: str
    model: str  # the model that answered: request.fallback_model when the fallback was used
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    latency_ms: int
    first_token_ms: int | None = None  # streams only
    finish_reason: str | None = None  # "stop", "length", ...
    attempts: int = 1  # calls made, retries and the fallback included
    reasoning: str = ""  # the model's thinking, never part of ``text`` (llm.reasoning)
    reasoning_tokens: int = 0  # part of output_tokens
