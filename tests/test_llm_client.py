"""llm.client through litellm over real HTTP to the local fake OpenAI server (tests/fakes/llm_server.py).

litellm is imported once for the whole session (about 7 s of CPU); the tests share one event loop per module
because litellm caches its HTTP clients per loop.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from llm import client, providers, registry
from llm.client import LLMRequest
from llm.errors import LLMBadRequest, LLMProviderError, LLMRateLimited, LLMTimeout, LLMUnavailable
from tests.fakes.llm_server import FakeLLM

ROOT = Path(__file__).resolve().parent.parent
MODEL = "openai/gpt-4o-mini"
FALLBACK = "openai/gpt-4.1-mini"
MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Say hello please"},
]  # 5 words: the fake server's prompt_tokens

aio = pytest.mark.asyncio(loop_scope="module")
pytestmark = [
    # litellm's own pydantic models warn while their schemas are built; litellm silences these itself, but
    # pytest resets warning filters for each test.
    pytest.mark.filterwarnings("ignore:.*`ReadOnly` qualifier:UserWarning"),
    pytest.mark.filterwarnings("ignore:Accessing the '.*' attribute on the instance is deprecated"),
]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLM]:
    with FakeLLM(token_delay=0.02) as server:
        yield server


@pytest.fixture(params=["bot", "web"])
def attempts_in(request, monkeypatch) -> str:
    """Every test runs twice: attempts made in this process, as the bot makes them, and in the child process of
    llm.runner, as the web process makes them."""
    if request.param == "bot":
        providers.litellm()  # warm_import() would skip it: the test settings have no keys
        monkeypatch.setattr(providers, "_inline", True)
    return request.param


@pytest.fixture
def llm(settings, fake, attempts_in):
    """Settings pointing openai/* at the fake server; the other providers have no key."""
    fake.reset()
    settings.LLM_PROVIDERS = {
        "openai": {"api_key": "sk-test", "api_base": fake.url},
        "anthropic": {"api_key": None, "api_base": None},
        "gemini": {"api_key": None, "api_base": None},
        "xai": {"api_key": None, "api_base": None},
    }
    settings.LLM_TIMEOUT_SECONDS = 5.0
    settings.LLM_CONNECT_TIMEOUT_SECONDS = 1.0
    settings.LLM_MAX_RETRIES = 2
    settings.LLM_RETRY_BACKOFF_SECONDS = 0.01
    return settings


@aio
async def test_generate_returns_text_tokens_and_cost(llm, fake):
    fake.reply_with("Hello there, friend")

    reply = await client.generate(LLMRequest(model=MODEL, messages=MESSAGES, temperature=0.2))

    assert reply.text == "Hello there, friend"
    assert reply.model == MODEL
    assert (reply.input_tokens, reply.output_tokens) == (5, 3)
    # litellm's price for gpt-4o-mini ($0.15 / $0.60 per million) agrees with the registry's.
    assert reply.cost_usd == Decimal("0.00000255") == registry.estimate_cost(MODEL, 5, 3)
    assert reply.finish_reason == "stop"
    assert reply.attempts == 1
    assert reply.first_token_ms is None
    assert 0 <= reply.latency_ms < 5000
    [sent] = fake.requests
    assert sent.model == "gpt-4o-mini"
    assert sent.messages == MESSAGES
    assert sent.headers["Authorization"] == "Bearer sk-test"
    assert sent.body["temperature"] == 0.2
    assert "user" not in sent.body  # Discord ids stay with us


@aio
async def test_max_tokens_reaches_the_provider(llm, fake):
    fake.reply_with("one two three four five")

    reply = await client.generate(LLMRequest(model=MODEL, messages=MESSAGES, max_tokens=2))

    assert (reply.text, reply.finish_reason, reply.output_tokens) == ("one two", "length", 2)


@aio
async def test_stream_yields_deltas_then_the_reply(llm, fake):
    fake.reply_with("The quick brown fox jumps")
    fake.enqueue("slow")

    async with client.stream(LLMRequest(model=MODEL, messages=MESSAGES)) as deltas:
        pieces = [piece async for piece in deltas]
    reply = deltas.reply

    assert len(pieces) == 5
    assert "".join(pieces) == reply.text == "The quick brown fox jumps"
    assert (reply.input_tokens, reply.output_tokens) == (5, 5)
    assert reply.cost_usd == registry.estimate_cost(MODEL, 5, 5)
    assert reply.first_token_ms is not None
    assert reply.first_token_ms < reply.latency_ms  # five words 20 ms apart
    assert reply.latency_ms >= 90
    assert reply.finish_reason == "stop"
    assert fake.requests[0].body["stream_options"] == {"include_usage": True}


@aio
async def test_reply_is_only_there_after_the_stream_ends(llm, fake):
    deltas = client.stream(LLMRequest(model=MODEL, messages=MESSAGES))
    with pytest.raises(RuntimeError):
        _ = deltas.reply
    first = await deltas.__anext__()
    assert first == "echo:"
    await deltas.aclose()  # leaving early closes the provider connection
    with pytest.raises(RuntimeError):
        _ = deltas.reply


@aio
async def test_a_hang_times_out(llm, fake):
    llm.LLM_TIMEOUT_SECONDS = 1.0
    llm.LLM_MAX_RETRIES = 0
    fake.enqueue("hang")

    started = time.monotonic()
    with pytest.raises(LLMTimeout) as caught:
        await client.generate(LLMRequest(model=MODEL, messages=MESSAGES))
    elapsed = time.monotonic() - started

    assert 0.9 < elapsed < 1.8
    assert caught.value.kind == "timeout"
    assert caught.value.model == MODEL
    assert caught.value.attempts == 1
    assert 900 < caught.value.latency_ms < 1800


@aio
async def test_a_hung_stream_times_out_then_retries(llm, fake):
    llm.LLM_TIMEOUT_SECONDS = 0.5
    fake.enqueue("hang")

    async with client.stream(LLMRequest(model=MODEL, messages=MESSAGES)) as deltas:
        text = "".join([piece async for piece in deltas])

    assert text == "echo: Say hello please"
    assert deltas.reply.attempts == 2
    assert 500 <= deltas.reply.latency_ms < 1500


@aio
async def test_a_stream_that_stalls_after_its_first_text_raises(llm, fake):
    llm.LLM_TIMEOUT_SECONDS = 0.5
    fake.enqueue("stall")
    pieces = []

    with pytest.raises(LLMTimeout) as caught:
        async with client.stream(LLMRequest(model=MODEL, messages=MESSAGES)) as deltas:
            async for piece in deltas:
                pieces.append(piece)

    assert pieces == ["echo:"]  # already shown to the user, so it is not retried
    assert caught.value.attempts == 1
    assert len(fake.requests) == 1


@aio
async def test_a_500_is_retried(llm, fake):
    fake.enqueue("500")

    reply = await client.generate(LLMRequest(model=MODEL, messages=MESSAGES))

    assert reply.text == "echo: Say hello please"
    assert reply.attempts == 2
    assert [r.behaviour for r in fake.requests] == ["500", "ok"]


@aio
async def test_a_429_is_retried(llm, fake):
    fake.enqueue("429")

    reply = await client.generate(LLMRequest(model=MODEL, messages=MESSAGES))

    assert reply.attempts == 2
    assert [r.behaviour for r in fake.requests] == ["429", "ok"]


@aio
async def test_a_stream_is_retried_before_its_first_text(llm, fake):
    fake.enqueue("503")

    deltas = client.stream(LLMRequest(model=MODEL, messages=MESSAGES))
    text = "".join([piece async for piece in deltas])

    assert text == "echo: Say hello please"
    assert deltas.reply.attempts == 2


@aio
async def test_persistent_rate_limits_raise_after_the_retries(llm, fake):
    fake.enqueue("429", "429", "429")

    with pytest.raises(LLMRateLimited) as caught:
        await client.generate(LLMRequest(model=MODEL, messages=MESSAGES))

    assert caught.value.kind == "rate_limited"
    assert caught.value.attempts == 3
    assert len(fake.requests) == 3


@aio
async def test_persistent_500s_fall_back(llm, fake):
    llm.LLM_MAX_RETRIES = 1
    fake.enqueue("500", "500")

    reply = await client.generate(LLMRequest(model=MODEL, messages=MESSAGES, fallback_model=FALLBACK))

    assert reply.model == FALLBACK
    assert reply.attempts == 3
    assert [r.model for r in fake.requests] == ["gpt-4o-mini", "gpt-4o-mini", "gpt-4.1-mini"]
    assert reply.cost_usd == registry.estimate_cost(FALLBACK, reply.input_tokens, reply.output_tokens)


@aio
async def test_a_failing_fallback_raises_its_error(llm, fake):
    llm.LLM_MAX_RETRIES = 0
    fake.enqueue("500", "503")

    with pytest.raises(LLMProviderError) as caught:
        await client.generate(LLMRequest(model=MODEL, messages=MESSAGES, fallback_model=FALLBACK))

    assert caught.value.model == FALLBACK
    assert caught.value.attempts == 2
    assert isinstance(caught.value.__cause__, LLMProviderError)
    assert caught.value.__cause__.model == MODEL


@aio
async def test_a_bad_request_is_not_retried(llm, fake):
    fake.enqueue("400")

    with pytest.raises(LLMBadRequest) as caught:
        await client.generate(LLMRequest(model=MODEL, messages=MESSAGES))

    assert caught.value.kind == "bad_request"
    assert caught.value.status_code == 400
    assert len(fake.requests) == 1


@aio
async def test_a_rejected_key_is_not_retried(llm, fake):
    fake.enqueue("401")

    with pytest.raises(LLMProviderError) as caught:
        await client.generate(LLMRequest(model=MODEL, messages=MESSAGES))

    assert not caught.value.retryable
    assert len(fake.requests) == 1


@aio
async def test_a_provider_without_key_is_unavailable(llm, fake):
    with pytest.raises(LLMUnavailable) as caught:
        await client.generate(LLMRequest(model="anthropic/claude-haiku-4-5", messages=MESSAGES))

    assert caught.value.kind == "unavailable"
    assert "ANTHROPIC_API_KEY" in str(caught.value)
    assert caught.value.attempts == 0
    assert fake.requests == []


@aio
async def test_an_unavailable_model_falls_back_to_offline(llm, fake):
    reply = await client.generate(
        LLMRequest(model="xai/grok-4.3", messages=MESSAGES, fallback_model=registry.OFFLINE_MODEL_ID)
    )

    assert reply.model == registry.OFFLINE_MODEL_ID
    assert "offline" in reply.text


@aio
async def test_an_unknown_model_is_a_bad_request(llm, fake):
    with pytest.raises(LLMBadRequest):
        await client.generate(LLMRequest(model="mystery/model", messages=MESSAGES))


@aio
async def test_the_offline_model_answers_and_streams(settings):
    settings.LLM_PROVIDERS = {}
    request = LLMRequest(model=registry.OFFLINE_MODEL_ID, messages=MESSAGES)

    reply = await client.generate(request)
    deltas = client.stream(request)
    pieces = [piece async for piece in deltas]

    assert "Parley's offline model" in reply.text
    assert "OPENAI_API_KEY" in reply.text
    assert "You said: Say hello please" in reply.text
    assert "system prompt seen" in reply.text
    assert "".join(pieces) == reply.text == deltas.reply.text
    assert pieces == [reply.text], "a complete answer goes out as one delta"
    assert reply.cost_usd == 0
    assert reply.input_tokens == 7  # "Be brief.\nSay hello please": 26 characters, about 4 a token
    assert reply.output_tokens == len(reply.text) // 4 + (len(reply.text) % 4 > 0)
    assert deltas.reply.first_token_ms is not None


def test_the_offline_model_needs_no_keys_and_never_imports_litellm():
    code = (
        "import asyncio, sys, django; django.setup()\n"
        "from llm import client\n"
        "req = client.LLMRequest(model='offline/parley-offline', messages=[{'role': 'user', 'content': 'ping'}])\n"
        "reply = asyncio.run(client.generate(req))\n"
        "async def read():\n"
        "    s = client.stream(req)\n"
        "    return ''.join([d async for d in s]), s.reply\n"
        "text, streamed = asyncio.run(read())\n"
        "assert 'You said: ping' in reply.text and text == reply.text, reply.text\n"
        "assert client.warm_import() is False\n"
        "assert 'litellm' not in sys.modules, 'litellm was imported'\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if "_API_KEY" not in k and not k.startswith("LITELLM")}
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
