"""The real bot against the fake Discord and the fake provider: channels that answer every message (with a
cooldown), a thread per conversation, role overrides, the block list and /summarize. One bot process serves the
module; each test has a channel of its own."""

from __future__ import annotations

import time

import pytest

from botcore.cogs.commands import BLOCKED, CANNOT_READ, NOT_YOURS_TO_READ, SUMMARY_PROMPT
from guilds import services
from guilds.models import DEFAULT_SYSTEM_PROMPT, Guild
from llm.models import Usage
from tests.fakes.discord_server import ALL_PERMISSIONS, FakeDiscord
from tests.fakes.llm_server import FakeLLM
from tests.support import BotWorld

pytestmark = pytest.mark.e2e
MODEL = "openai/gpt-4o-mini"


class World(BotWorld):
    @property
    def guild_row(self) -> Guild:
        return Guild.objects.get(discord_id=int(self.guild["id"]))

    def override(self, **fields: object) -> None:
        """This test's channel gets an override, through the service the dashboard uses."""
        services.channel_override_set(guild=self.guild_row, actor=None, channel_id=self.channel, **fields)

    def rows(self, n: int, **where: object) -> list[Usage]:
        query = Usage.objects.filter(**where).order_by("id")
        try:
            self.fake.wait_for(lambda: query.count() >= n, timeout=30)
        except TimeoutError:
            raise AssertionError(f"{query.count()} usage rows, expected {n}\n{self.bot.tail()}") from None
        return list(query)

    def requests(self, n: int) -> list:
        return self.fake.wait_for(lambda: self.llm.requests if len(self.llm.requests) >= n else None, 30)

    def responses(self, interaction: dict, n: int) -> list[dict]:
        def matching() -> list[dict]:
            found = [
                r for r in self.fake.interaction_responses if r["interaction_id"] == int(interaction["id"])
            ]
            return found[:n] if len(found) >= n else []

        return self.fake.wait_for(matching, timeout=30)


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    with FakeDiscord(heartbeat_interval_ms=1000) as fake, FakeLLM(token_delay=0.01) as llm:
        guild = fake.add_guild(name="Modes Guild", channels=[f"modes-{n}" for n in range(20)])
        env = {
            "OPENAI_API_KEY": "sk-test",
            "OPENAI_API_BASE": llm.url,
            "LLM_MAX_RETRIES": "0",
            "LLM_TIMEOUT_SECONDS": "5",
        }
        with World.running(fake, llm, guild, django_db_blocker, **env) as world:
            yield world


@pytest.mark.django_db(transaction=True)
def test_the_database_is_set_up_for_this_module():
    """The first test marked for the database creates it, before the module's bot starts (see test_bot_llm_e2e)."""
    assert not Guild.objects.exists()


@pytest.fixture
def w(world, django_db_blocker):
    with django_db_blocker.unblock():
        world.fresh(model=MODEL, blocked_user_ids=[])
        yield world


def texts(request) -> str:
    return "\n".join(str(message["content"]) for message in request.messages)


# --- Answer every message ----------------------------------------------------------------------------------------
def test_every_message_is_answered_without_a_mention_and_the_cooldown_holds_back_the_chatter(w):
    w.override(mode="everyone", cooldown_seconds=60)
    alice, bob = w.user(), w.user()
    first = w.fake.send_user_message(w.channel, "good morning, everyone", author=alice)
    [reply] = w.fake.wait_for_messages(1, channel_id=w.channel, timeout=30)
    assert reply["reply_to"] == int(first["id"])
    w.fake.send_user_message(
        w.channel, "morning!", author=bob
    )  # within the cooldown, to nobody in particular
    asked = w.ask("how are you?", bob)  # addressed to the bot: answered whatever the cooldown
    w.fake.wait_for_messages(2, channel_id=w.channel, timeout=30)
    time.sleep(0.5)
    assert [m["reply_to"] for m in w.sent()] == [int(first["id"]), int(asked["id"])]
    rows = w.rows(2, channel_id=w.channel)
    assert [(row.outcome, row.source) for row in rows] == [("ok", "discord")] * 2, (
        "no row for the held-back one"
    )


def test_every_message_is_answered_with_the_channels_recent_messages_as_context(w):
    w.override(mode="everyone")
    alice, bob = w.user(), w.user()
    w.fake.send_user_message(w.channel, "my cat is called Tom", author=alice)
    w.fake.wait_for_messages(1, channel_id=w.channel, timeout=30)
    w.fake.send_user_message(w.channel, "what is the cat called?", author=bob)  # no reply, no mention
    w.fake.wait_for_messages(2, channel_id=w.channel, timeout=30)
    second = w.requests(2)[1]
    assert "my cat is called Tom" in texts(second) and "echo:" in texts(second), "both people and the bot"


def test_per_user_rate_limits_still_apply_where_everyone_is_answered(w):
    w.override(mode="everyone")
    w.configure(user_messages_per_minute=1)
    chatty = w.user()
    w.fake.send_user_message(w.channel, "one", author=chatty)
    w.fake.wait_for_messages(1, channel_id=w.channel, timeout=30)
    w.fake.send_user_message(w.channel, "two", author=chatty)
    rows = w.rows(2, user_discord_id=int(chatty["id"]))
    assert [row.outcome for row in rows] == ["ok", "user_limited"]
    assert len(w.llm.requests) == 1


# --- A thread per conversation -----------------------------------------------------------------------------------
def test_a_question_opens_a_thread_and_the_thread_is_the_conversation(w):
    w.override(mode="threads")
    user = w.user()
    w.llm.reply_with("Let's talk about tea here.")
    asked = w.ask("can we talk about tea?", user)
    [thread] = w.fake.wait_for(lambda: list(w.fake.threads_created), timeout=30)
    assert (thread["id"], thread["parent_id"]) == (int(asked["id"]), w.channel)
    assert thread["name"] == "can we talk about tea?"
    [opening] = w.fake.wait_for_messages(1, channel_id=thread["id"], timeout=30)
    assert w.content(opening) == "Let's talk about tea here."
    assert opening["reply_to"] is None and opening["allowed_mentions"]["parse"] == []
    assert not w.sent(), "nothing is posted in the channel itself"

    w.llm.reply_with(None)  # echo
    follow = w.fake.send_user_message(thread["id"], "green or black?", author=user)  # no mention needed
    answer = w.fake.wait_for_messages(2, channel_id=thread["id"], timeout=30)[1]
    assert answer["reply_to"] == int(follow["id"])
    history = texts(w.requests(2)[1])
    assert "can we talk about tea?" in history and "Let's talk about tea here." in history
    rows = w.rows(2, user_discord_id=int(user["id"]))
    assert [row.outcome for row in rows] == ["ok", "ok"]


def test_a_streamed_answer_goes_to_the_thread_too(w):
    w.configure(streaming=True)
    w.override(mode="threads")
    w.llm.reply_with("A streamed answer, word by word.")
    w.ask("stream it", w.user())
    [thread] = w.fake.wait_for(lambda: list(w.fake.threads_created), timeout=30)
    [message] = w.fake.wait_for_messages(1, channel_id=thread["id"], timeout=30)
    w.fake.wait_for(lambda: w.content(message) == "A streamed answer, word by word.", timeout=30)
    assert message["reply_to"] is None and not w.sent()


def test_outside_the_bots_threads_the_channel_keeps_the_servers_rules(w):
    w.override(mode="threads")
    user = w.user()
    w.fake.send_user_message(w.channel, "just chatting", author=user)
    w.ask("a question", user)
    [thread] = w.fake.wait_for(lambda: list(w.fake.threads_created), timeout=30)
    w.fake.wait_for_messages(1, channel_id=thread["id"], timeout=30)
    time.sleep(0.5)
    assert len(w.fake.threads_created) == 1 and len(w.llm.requests) == 1


# --- Role overrides ----------------------------------------------------------------------------------------------
def test_a_members_highest_role_override_applies_after_the_channels(w, settings):
    # This process validates the model as the dashboard would: OpenAI has a key in the bot's environment.
    settings.LLM_PROVIDERS = {**settings.LLM_PROVIDERS, "openai": {"api_key": "sk-test", "api_base": None}}
    gid = int(w.guild["id"])
    helpers = w.fake.add_role(gid, "helpers", position=1)
    vips = w.fake.add_role(gid, "vips", position=2)
    services.role_override_set(
        guild=w.guild_row,
        actor=None,
        role_id=int(helpers["id"]),
        system_prompt="You help helpers.",
        model="openai/gpt-4.1-mini",
    )
    services.role_override_set(
        guild=w.guild_row, actor=None, role_id=int(vips["id"]), system_prompt="You pamper VIPs."
    )
    member, plain = w.user(), w.user()
    w.fake.set_member_roles(gid, member, [int(helpers["id"]), int(vips["id"])])

    w.ask("hello", member)
    request = w.requests(1)[0]
    assert (request.model, request.messages[0]["content"]) == ("gpt-4.1-mini", "You pamper VIPs.")
    w.ask("hello", plain)
    request = w.requests(2)[1]
    assert (request.model, request.messages[0]["content"]) == ("gpt-4o-mini", DEFAULT_SYSTEM_PROMPT)
    w.override(system_prompt="This channel is about chess.")
    w.ask("hello again", member)
    request = w.requests(3)[2]
    assert (request.model, request.messages[0]["content"]) == ("gpt-4.1-mini", "This channel is about chess.")
    rows = w.rows(2, user_discord_id=int(member["id"]))
    assert [row.model for row in rows] == ["openai/gpt-4.1-mini"] * 2

    interaction = w.fake.dispatch_interaction(
        "ask", {"prompt": "and here?"}, channel_id=w.channel, user=member
    )
    w.responses(interaction, 2)
    assert w.requests(4)[3].model == "gpt-4.1-mini", "/ask follows the roles too"


# --- The block list ----------------------------------------------------------------------------------------------
def test_a_blocked_user_gets_no_answer_and_no_notice(w):
    mallory, alice = w.user(), w.user()
    w.configure(blocked_user_ids=[int(mallory["id"])])
    w.ask("hello?", mallory)
    asked = w.ask("hello!", alice)
    w.fake.wait_for_messages(1, channel_id=w.channel, timeout=30)
    time.sleep(0.5)
    assert [m["reply_to"] for m in w.sent()] == [int(asked["id"])]
    assert not Usage.objects.filter(user_discord_id=int(mallory["id"])).exists()

    interaction = w.fake.dispatch_interaction(
        "summarize", {}, channel_id=w.channel, user=mallory
    )  # a command must be answered: only they see the refusal
    [callback] = w.responses(interaction, 1)
    assert callback["content"] == BLOCKED and callback["data"]["flags"] & 64
    assert len(w.llm.requests) == 1


# --- /summarize --------------------------------------------------------------------------------------------------
def test_summarize_reads_the_channel_and_only_the_asker_sees_the_summary(w):
    alice, bob = w.user(), w.user()
    w.fake.send_user_message(w.channel, "shall we meet on Friday?", author=alice)
    w.fake.send_user_message(w.channel, "Friday works,\n3 pm", author=bob)
    w.llm.reply_with("They meet on Friday at 3 pm. @everyone")
    interaction = w.fake.dispatch_interaction("summarize", {"messages": 10}, channel_id=w.channel, user=alice)
    callback, followup = w.responses(interaction, 2)
    assert callback["type"] == 5 and callback["data"]["flags"] & 64, "deferred, ephemeral"
    assert followup["content"] == "They meet on Friday at 3 pm. @everyone"
    assert followup["data"]["flags"] & 64 and followup["data"]["allowed_mentions"]["parse"] == []
    [request] = w.requests(1)
    assert request.model == "gpt-4o-mini"
    assert request.messages[0] == {"role": "system", "content": SUMMARY_PROMPT}
    assert request.messages[1]["content"] == (
        f"{alice['username']}: shall we meet on Friday?\n{bob['username']}: Friday works, 3 pm"
    )
    [row] = w.rows(1, user_discord_id=int(alice["id"]))
    assert (row.source, row.outcome, row.model, row.channel_id) == ("summary", "ok", MODEL, w.channel)


def test_summarize_says_so_when_it_cannot_read_the_channel(w):
    asker = w.user()
    w.fake.fail_next(
        "GET", rf"/channels/{w.channel}/messages$", status=403, body={"message": "Missing Access"}
    )
    interaction = w.fake.dispatch_interaction("summarize", {}, channel_id=w.channel, user=asker)
    _, followup = w.responses(interaction, 2)
    assert followup["content"] == CANNOT_READ and followup["data"]["flags"] & 64
    [row] = w.rows(1, user_discord_id=int(asker["id"]))
    assert (row.source, row.outcome, row.input_tokens) == ("summary", "disabled", 0)
    assert not w.llm.requests


def test_summarize_refuses_a_member_who_may_not_read_the_history(w):
    asker = w.user()
    w.fake.send_user_message(w.channel, "something said before they joined", author=w.user())
    no_history = str(int(ALL_PERMISSIONS) & ~(1 << 16))  # READ_MESSAGE_HISTORY
    interaction = w.fake.dispatch_interaction(
        "summarize", {}, channel_id=w.channel, user=asker, permissions=no_history
    )
    [callback] = w.responses(interaction, 1)
    assert callback["data"]["content"] == NOT_YOURS_TO_READ and callback["data"]["flags"] & 64
    [row] = w.rows(1, user_discord_id=int(asker["id"]))
    assert (row.source, row.outcome) == ("summary", "disabled")
    assert not w.llm.requests
