"""A reasoning model's thinking never reaches Discord raw: taken out of the text (``<think>`` blocks, split across
stream pieces) or out of the provider's reasoning field, through litellm to the local fake OpenAI server."""

from __future__ import annotations

import pytest

from llm import client, offline, providers, reasoning
from llm.client import LLMRequest
from llm.reasoning import ThinkSplitter
from tests.fakes.llm_server import FakeLLM

MODEL = "openai/gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Why is the sky blue?"}]
# litellm's own pydantic models warn while their schemas are built (as in tests/test_llm_client.py).
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*`ReadOnly` qualifier:UserWarning"),
    pytest.mark.filterwarnings("ignore:Accessing the '.*' attribute on the instance is deprecated"),
]


def split(pieces: list[str]) -> tuple[str, str]:
    splitter = ThinkSplitter()
    shown = "".join(splitter.feed(p) for p in pieces) + splitter.flush()
    return shown, splitter.thought


@pytest.mark.parametrize(
    "pieces",
    [
        ["<think>Rayleigh scattering.</think>\n\nBecause of Rayleigh scattering."],
        ["<thi", "nk>Rayleigh ", "scattering.</th", "ink>", "\n\nBecause of ", "Rayleigh scattering."],
        list("<think>Rayleigh scattering.</think>\n\nBecause of Rayleigh scattering."),
    ],
)
def test_think_blocks_are_taken_out_however_the_text_is_cut(pieces):
    assert split(pieces) == ("Because of Rayleigh scattering.", "Rayleigh scattering.")


def test_text_without_thinking_is_left_alone_even_with_angle_brackets():
    assert split(["a < b and <", "b> is a tag, 1 <", "2"]) == ("a < b and <b> is a tag, 1 <2", "")


def test_a_block_opened_by_the_prompt_template_is_thinking_up_to_its_end():
    """DeepSeek-R1-style templates put "<think>" in the prompt: the answer holds only the block's end."""
    assert split(["Light scatters.</think>\n\nRayleigh scattering."]) == (
        "Rayleigh scattering.",
        "Light scatters.",
    )


def test_a_think_tag_inside_the_answer_is_text():
    answer = "The <think> tag wraps a model's reasoning; </think> ends it."
    assert split([answer]) == (answer, "")
    assert split(["The ", "<think> tag is", " text here."]) == ("The <think> tag is text here.", "")


def test_an_unclosed_block_is_all_thinking():
    assert split(["<think>still ", "thinking"]) == ("", "still thinking")


def test_the_spoiler_cannot_be_broken_out_of():
    shown = reasoning.spoiler("a || b ``` c " + "x" * 2000)
    assert shown.startswith("-# Reasoning\n||") and shown.endswith("||\n\n")
    inner = shown[len("-# Reasoning\n||") : -len("||\n\n")]
    assert "||" not in inner and "```" not in inner
    assert len(inner) <= reasoning.SPOILER_LIMIT
    assert reasoning.spoiler("  \n ") == ""


@pytest.fixture(scope="module")
def fake():
    with FakeLLM(token_delay=0.01) as server:
        yield server


@pytest.fixture(params=["bot", "web"])
def llm(request, settings, fake, monkeypatch):
    """Both ways an attempt runs: in this process (the bot) and in llm.runner's child (the web process)."""
    if request.param == "bot":
        monkeypatch.setattr(providers, "_inline", True)
    fake.reset()
    settings.LLM_PROVIDERS = {
        **settings.LLM_PROVIDERS,
        "openai": {"api_key": "sk-test", "api_base": fake.url},
    }
    settings.LLM_TIMEOUT_SECONDS = 10.0
    return fake


@pytest.mark.asyncio
async def test_a_reasoning_field_is_kept_apart_and_counted(llm):
    llm.reply_with("Because of Rayleigh scattering.")
    llm.reason_with("Light scatters more at short wavelengths.")
    whole = await client.generate(LLMRequest(model=MODEL, messages=MESSAGES))
    llm.enqueue("slow")
    async with client.stream(LLMRequest(model=MODEL, messages=MESSAGES)) as deltas:
        pieces = [piece async for piece in deltas]
    for reply in (whole, deltas.reply):
        assert reply.text == "Because of Rayleigh scattering."
        assert reply.reasoning == "Light scatters more at short wavelengths."
        assert reply.reasoning_tokens == 6  # the fake counts words, and includes them in completion_tokens
        assert reply.output_tokens == 4 + 6
    assert "".join(pieces) == "Because of Rayleigh scattering."


@pytest.mark.asyncio
async def test_think_blocks_in_the_text_never_come_out_of_the_stream(llm):
    llm.reply_with("<think>Short waves scatter.</think> Rayleigh scattering.")
    llm.enqueue("slow")  # one word a piece: the tags arrive split
    async with client.stream(LLMRequest(model=MODEL, messages=MESSAGES)) as deltas:
        pieces = [piece async for piece in deltas]
    assert "think" not in "".join(pieces)
    assert deltas.reply.text == "Rayleigh scattering."
    assert deltas.reply.reasoning == "Short waves scatter."
    # The provider did not count them apart: estimated from the text, within what it counted as output.
    assert deltas.reply.reasoning_tokens == offline.approx_tokens("Short waves scatter.")
    assert 0 < deltas.reply.reasoning_tokens <= deltas.reply.output_tokens
