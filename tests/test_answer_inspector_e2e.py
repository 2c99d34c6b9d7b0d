"""The real bot records why it answered a message or did not (the answer inspector's rows): a mention answered, a
channel not allowed, a blocked user, a limit, and ordinary chatter left out. The module runs twice: without
LOG_MESSAGE_CONTENT no row holds the message's text, with it every row does."""

from __future__ import annotations

import time

import pytest

from botcore.models import TriggerDecision
from guilds.models import Guild
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.llm_server import FakeLLM
from tests.support import BotWorld

pytestmark = pytest.mark.e2e
MODEL = "openai/gpt-4o-mini"
Reason = TriggerDecision.Reason


class World(BotWorld):
    content = False

    def decision(self, message: dict) -> TriggerDecision:
        query = TriggerDecision.objects.filter(message_id=int(message["id"]))
        try:
            self.fake.wait_for(query.exists, timeout=30)
        except TimeoutError:
            raise AssertionError(f"no decision for message {message['id']}\n{self.bot.tail()}") from None
        decision = query.get()
        assert decision.guild == Guild.objects.get(discord_id=int(self.guild["id"]))
        assert (decision.channel_id, decision.author_id) == (self.channel, int(message["author"]["id"]))
        expected = message["content"] if self.content else ""
        assert decision.content == expected, "the text only with LOG_MESSAGE_CONTENT"
        return decision


@pytest.fixture(scope="module", params=[False, True], ids=["no-content", "log-content"])
def world(request, django_db_setup, django_db_blocker):
    with FakeDiscord(heartbeat_interval_ms=1000) as fake, FakeLLM(token_delay=0.01) as llm:
        guild = fake.add_guild(name="Inspector Guild", channels=[f"inspect-{n}" for n in range(12)])
        env = {
            "OPENAI_API_KEY": "sk-test",
            "OPENAI_API_BASE": llm.url,
            "LLM_MAX_RETRIES": "0",
            "LLM_TIMEOUT_SECONDS": "5",
            "LOG_MESSAGE_CONTENT": "true" if request.param else "false",
        }
        with World.running(fake, llm, guild, django_db_blocker, **env) as world:
            world.content = request.param
            yield world


@pytest.mark.django_db(transaction=True)
def test_the_database_is_set_up_for_this_module():
    """The first test marked for the database creates it, before the module's bot starts (see test_bot_llm_e2e)."""
    assert not Guild.objects.exists()


@pytest.fixture
def w(world, django_db_blocker):
    with django_db_blocker.unblock():
        world.fresh(model=MODEL, blocked_user_ids=[], allowed_channel_ids=[])
        yield world


def test_a_mention_answered_has_its_model_tokens_latency_and_cost(w):
    asked = w.ask("what time is it?", w.user())
    w.fake.wait_for_messages(1, channel_id=w.channel, timeout=30)
    decision = w.decision(asked)
    assert (decision.reason, decision.trigger, decision.usage_outcome) == (Reason.ANSWERED, "mention", "ok")
    assert decision.model == MODEL and decision.input_tokens > 0 and decision.output_tokens > 0
    assert decision.latency_ms > 0 and decision.cost_usd > 0
    assert decision.jump_url == f"https://discord.com/channels/{w.guild['id']}/{w.channel}/{asked['id']}"


def test_a_mention_in_a_channel_not_allowed(w):
    other = int(w.guild["channels"][-1]["id"])
    w.configure(allowed_channel_ids=[other])
    decision = w.decision(w.ask("are you there?", w.user()))
    assert decision.reason == Reason.CHANNEL and decision.model == ""
    assert not w.sent()


def test_a_blocked_user(w):
    pest = w.user("pest")
    w.configure(blocked_user_ids=[int(pest["id"])])
    assert w.decision(w.ask("answer me!", pest)).reason == Reason.BLOCKED
    assert not w.sent()


def test_a_limit_refusal(w):
    w.configure(user_messages_per_minute=1)
    chatty = w.user()
    first = w.ask("one", chatty)
    w.fake.wait_for_messages(1, channel_id=w.channel, timeout=30)
    assert w.decision(first).reason == Reason.ANSWERED
    second = w.decision(w.ask("two", chatty))
    assert (second.reason, second.usage_outcome, second.cost_usd) == (Reason.LIMIT, "user_limited", 0)


def test_ordinary_chatter_is_not_recorded_but_chatter_in_a_named_channel_is(w):
    someone = w.user()
    chatter = w.fake.send_user_message(w.channel, "lunch anyone?", author=someone)
    asked = w.ask("hello", someone)
    w.decision(asked)
    time.sleep(1)  # past a flush: the chatter was decided first, so its row would be there by now
    assert not TriggerDecision.objects.filter(message_id=int(chatter["id"])).exists()
    # Once the server names the channel, a message there that nobody addressed to the bot says so.
    w.configure(allowed_channel_ids=[w.channel])
    named = w.fake.send_user_message(w.channel, "lunch, anyone?", author=someone)
    assert w.decision(named).reason == Reason.NOT_ADDRESSED
