"""llm.runner: the web process's model calls run in a child process (the real one, `python -m llm.runner`) against
the local fake OpenAI server; these tests are about the child itself: it dies, it idles out, a stream is left."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from llm import client, runner
from llm.client import LLMRequest
from tests.fakes.llm_server import FakeLLM

MODEL = "openai/gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Say hello please"}]

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def fake():
    with FakeLLM(token_delay=0.05, hang_seconds=30) as server:
        yield server


@pytest.fixture
def llm(settings, fake):
    fake.reset()
    settings.LLM_PROVIDERS = {
        **settings.LLM_PROVIDERS,
        "openai": {"api_key": "sk-test", "api_base": fake.url},
    }
    settings.LLM_TIMEOUT_SECONDS = 20.0
    settings.LLM_MAX_RETRIES = 1
    settings.LLM_RETRY_BACKOFF_SECONDS = 0.01
    return settings


def child_pid() -> int:
    child = runner._child
    assert child is not None and child.alive()
    return child.proc.pid


async def until(check, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_a_child_killed_mid_call_fails_the_attempt_and_the_retry_starts_a_new_one(llm, fake):
    fake.reply_with("back again")
    await client.generate(LLMRequest(model=MODEL, messages=MESSAGES))  # a child, with litellm loaded
    first = child_pid()
    fake.enqueue("hang")

    call = asyncio.create_task(client.generate(LLMRequest(model=MODEL, messages=MESSAGES)))
    await until(lambda: any(r.behaviour == "hang" for r in fake.requests))
    os.kill(first, signal.SIGKILL)
    reply = await asyncio.wait_for(call, 30)

    assert reply.text == "back again"
    assert reply.attempts == 2, "the killed attempt counts, then the retry answered"
    assert child_pid() != first


async def test_a_stream_left_early_is_cancelled_in_the_child(llm, fake):
    fake.reply_with(" ".join(f"w{i}" for i in range(200)))
    fake.enqueue("slow")
    async with client.stream(LLMRequest(model=MODEL, messages=MESSAGES)) as deltas:
        async for _ in deltas:
            break
    child = runner._child
    assert child is not None
    assert child.calls == {}, "the parent forgot the attempt"

    fake.reply_with("next one")
    reply = await client.generate(LLMRequest(model=MODEL, messages=MESSAGES))
    assert reply.text == "next one", "the child goes on serving"


async def test_an_idle_child_exits_and_the_next_call_starts_another(llm, fake, settings):
    settings.LLM_RUNNER_IDLE_SECONDS = 1.0
    runner.start()
    child = runner._child
    assert child is not None
    if child.alive():  # started before this test with the long idle time: replace it
        child.proc.kill()
        await until(lambda: not child.alive())
        runner.start()
        child = runner._child
        assert child is not None
    await until(lambda: not child.alive(), timeout=40)  # litellm's import, then a second of idleness
    assert child.proc.returncode == 0

    fake.reply_with("fresh child")
    reply = await client.generate(LLMRequest(model=MODEL, messages=MESSAGES))
    assert reply.text == "fresh child"
    assert runner._child is not child
