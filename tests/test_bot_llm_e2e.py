"""The bot answering through litellm and the local fake OpenAI server: streaming, retries, fallback, usage,
budgets, rate limits and attachments. One bot process serves the whole module (litellm takes seconds to import)."""

from __future__ import annotations

import base64
import itertools
import time
from decimal import Decimal

import pytest

from guilds.models import Guild
from llm.models import Usage
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.llm_server import FakeLLM
from tests.support import BotWorld

pytestmark = pytest.mark.e2e
MODEL = "openai/gpt-4o-mini"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


class World(BotWorld):
    def usage_rows(self, n: int, user: dict) -> list[Usage]:
        query = Usage.objects.filter(user_discord_id=int(user["id"])).order_by("id")
        try:
            self.fake.wait_for(lambda: query.count() >= n, timeout=30)
        except TimeoutError:
            raise AssertionError(f"{query.count()} usage rows, expected {n}\n{self.bot.tail()}") from None
        return list(query)


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    with FakeDiscord(heartbeat_interval_ms=1000) as fake, FakeLLM(token_delay=0.15) as llm:
        guild = fake.add_guild(name="LLM Guild", channels=[f"test-{n}" for n in range(20)])
        env = {
            "OPENAI_API_KEY": "sk-test",
            "OPENAI_API_BASE": llm.url,
            "LLM_MAX_RETRIES": "1",
            "LLM_RETRY_BACKOFF_SECONDS": "0.05",
            "LLM_TIMEOUT_SECONDS": "2",
        }
        with World.running(fake, llm, guild, django_db_blocker, **env) as world:
            yield world


@pytest.mark.django_db(transaction=True)
def test_the_database_is_set_up_for_this_module():
    """pytest-django creates the test database only for marked tests; this one is, and runs before the bot starts.

    The other tests are not marked: a per-test flush (TRUNCATE) would deadlock with the module's running bot on
    PostgreSQL. They use their own channel and users instead, and the module flushes once at the end."""
    assert not Guild.objects.exists()


@pytest.fixture
def w(world, django_db_blocker):
    """Clean fakes, the guild's settings back to the module's defaults, and a channel of its own."""
    with django_db_blocker.unblock():
        world.fresh(model=MODEL)
        yield world


def test_full_answer_with_usage_and_cost(w):
    user = w.user()
    w.llm.reply_with("The capital of France is Paris.")
    asked = w.ask("capital of France?", user)
    [reply] = w.fake.wait_for_messages(1, channel_id=w.channel, timeout=30)
    assert reply["content"] == "The capital of France is Paris."
    assert reply["reply_to"] == int(asked["id"])
    [request] = w.llm.requests
    assert request.model == "gpt-4o-mini"
    assert request.messages[0]["role"] == "system"
    assert request.messages[-1] == {
        "role": "user",
        "content": "user{}: capital of France?".format(user["username"][4:]),
    }
    [usage] = w.usage_rows(1, user)
    assert usage.outcome == "ok" and usage.model == MODEL
    assert usage.output_tokens == 6 and usage.input_tokens > 0
    expected = (Decimal("0.15") * usage.input_tokens + Decimal("0.60") * usage.output_tokens) / 1_000_000
    assert usage.cost_usd == expected.quantize(Decimal("0.00000001"))


def test_streamed_answer_arrives_as_paced_edits(w):
    w.configure(streaming=True)
    user = w.user()
    words = [f"word{i}" for i in range(30)]
    w.llm.reply_with(" ".join(words))
    w.llm.enqueue("slow")
    w.ask("stream please", user)
    [usage] = w.usage_rows(1, user)
    [message] = w.sent()
    assert w.content(message) == " ".join(words), "the final edit holds the complete text"
    edits = [edit for edit in w.fake.edits if edit["id"] == message["id"]]
    assert len(edits) >= 2, "a 4.5 s stream shows progress"
    times = [message["t"]] + [edit["t"] for edit in edits]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert min(gaps) >= 1.1, gaps
    assert usage.first_token_ms is not None and usage.first_token_ms < usage.latency_ms
    assert not [r for r in w.fake.requests if r.get("status") == 429]


def test_long_answer_is_split_under_the_limit(w):
    user = w.user()
    w.llm.reply_with(" ".join(f"Sentence {i} of a long answer." for i in range(300)))
    w.ask("tell me everything", user)
    w.usage_rows(1, user)
    messages = w.fake.wait_for_messages(3, channel_id=w.channel, timeout=30)
    assert all(len(w.content(m)) <= 2000 for m in messages)
    assert messages[0]["reply_to"] is not None and messages[1]["reply_to"] is None
    assert all(m["allowed_mentions"]["parse"] == [] for m in messages)


def test_429_then_success(w):
    user = w.user()
    w.llm.enqueue("429")
    w.llm.reply_with("after a retry")
    w.ask("hello", user)
    [reply] = w.fake.wait_for_messages(1, channel_id=w.channel, timeout=30)
    assert reply["content"] == "after a retry"
    assert len(w.llm.requests) == 2


def test_fallback_model_answers_when_the_provider_fails(w):
    w.configure(fallback_model="offline/parley-offline")
    user = w.user()
    w.llm.enqueue("500", "500")
    w.ask("anyone there?", user)
    [reply] = w.fake.wait_for_messages(1, channel_id=w.channel, timeout=30)
    assert "offline model" in reply["content"]
    [usage] = w.usage_rows(1, user)
    assert usage.model == "offline/parley-offline" and usage.outcome == "ok"


def test_timeout_gives_the_friendly_line(w):
    user = w.user()
    w.llm.enqueue("hang", "hang")
    w.ask("are you stuck?", user)
    [reply] = w.fake.wait_for_messages(1, channel_id=w.channel, timeout=30)
    assert reply["content"] == "Sorry, the model took too long to answer. Please try again."
    [usage] = w.usage_rows(1, user)
    assert usage.outcome == "timeout"


def test_budget_notice_is_sent_once_and_the_provider_is_not_called(w):
    w.configure(daily_budget_usd=Decimal("0"))
    user = w.user()
    w.ask("first", user)
    w.ask("second", user)
    w.usage_rows(2, user)
    time.sleep(0.3)
    [notice] = w.sent()
    assert "daily AI budget" in notice["content"]
    assert w.llm.requests == []
    assert set(Usage.objects.filter(user_discord_id=int(user["id"])).values_list("outcome", flat=True)) == {
        "over_budget"
    }


def test_per_user_rate_limit(w):
    w.configure(user_messages_per_minute=2)
    user, other = w.user(), w.user()
    for n in range(4):
        w.ask(f"message {n}", user)
        w.usage_rows(n + 1, user)
    w.ask("I am someone else", other)
    w.usage_rows(1, other)
    w.fake.wait_for_messages(4, channel_id=w.channel, timeout=30)
    time.sleep(0.3)
    contents = [w.content(m) for m in w.sent()]
    notices = [c for c in contents if "faster than this server allows" in c]
    assert len(notices) == 1, contents
    assert len(w.llm.requests) == 3


def test_images_go_to_vision_models_and_text_files_are_inlined(w):
    user = w.user()
    w.ask(
        "what is in these?",
        user,
        attachments=[
            {"filename": "dot.png", "data": PNG, "content_type": "image/png"},
            {"filename": "notes.txt", "data": "remember the milk", "content_type": "text/plain"},
            {"filename": "archive.zip", "data": b"PK", "content_type": "application/zip"},
        ],
    )
    w.fake.wait_for_messages(1, channel_id=w.channel, timeout=30)
    parts = w.llm.requests[0].messages[-1]["content"]
    text = parts[0]["text"]
    assert "remember the milk" in text
    assert "archive.zip" in text and "not sent" in text
    assert parts[1]["type"] == "image_url"
    assert parts[1]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(PNG).decode()


def test_a_reasoning_models_thinking_is_hidden_by_default_and_counted(w):
    w.configure(streaming=True)
    user = w.user()
    w.llm.reply_with("Because of Rayleigh scattering.")
    w.llm.reason_with("Shorter wavelengths scatter more; blue is short.")
    w.llm.enqueue("slow")
    w.ask("why is the sky blue?", user)
    [usage] = w.usage_rows(1, user)
    [message] = w.sent()
    assert w.content(message) == "Because of Rayleigh scattering."
    assert usage.reasoning_tokens == 7 and usage.output_tokens == 4 + 7


@pytest.mark.parametrize("streaming", [True, False])
def test_the_thinking_can_be_shown_as_a_spoiler(w, streaming):
    w.configure(streaming=streaming, reasoning_display="spoiler")
    user = w.user()
    w.llm.reply_with("<think>Blue light scatters || most.</think>\n\nRayleigh scattering.")
    w.ask("why is the sky blue?", user)
    [usage] = w.usage_rows(1, user)
    [message] = w.sent()
    assert (
        w.content(message) == "-# Reasoning\n||Blue light scatters |\u200b| most.||\n\nRayleigh scattering."
    )
    assert message["allowed_mentions"]["parse"] == []
    assert usage.reasoning_tokens > 0
