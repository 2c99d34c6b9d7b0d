"""What an operator trusts most, under bursts and faults: limits that hold exactly, and no message without an
outcome. The real bot against the fake Discord and the fake OpenAI server; one bot process for the module."""

from __future__ import annotations

import signal
import time
from decimal import Decimal

import pytest
from django.db.models import F, Sum

from guilds.models import Guild, GuildSettings
from llm import registry
from llm.models import Usage
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.llm_server import FakeLLM
from tests.support import BotProcess, BotWorld, TcpProxy

pytestmark = pytest.mark.e2e
OFFLINE = "offline/parley-offline"
PRICED = "openai/gpt-4.1"  # $2 in, $8 out per million tokens: a long answer costs about a cent
CUT_NOTE = "The answer was cut off"
ENV = {
    "OPENAI_API_KEY": "sk-test",
    "LLM_MAX_RETRIES": "0",
    "LLM_TIMEOUT_SECONDS": "3",
    "BOT_DISCORD_SEND_ATTEMPTS": "3",
    "BOT_DISCORD_RETRY_SECONDS": "0.2",
}


class World(BotWorld):
    def users(self, n: int) -> list[dict]:
        return [self.user("burst") for _ in range(n)]

    def configure(self, **fields: object) -> None:
        super().configure(**fields)
        time.sleep(1.1)  # the bot rechecks settings at most once a second

    def rows(self, n: int, timeout: float = 40) -> list[Usage]:
        query = Usage.objects.filter(channel_id=self.channel).order_by("id")
        try:
            self.fake.wait_for(
                lambda: query.count() >= n and not query.filter(outcome="pending").exists(), timeout=timeout
            )
        except TimeoutError:
            outcomes = list(query.values_list("outcome", flat=True))
            raise AssertionError(f"{outcomes}, expected {n} rows\n{self.bot.tail()}") from None
        time.sleep(0.6)  # one more flush: nothing beyond n may arrive
        return list(query)


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory):
    journal = tmp_path_factory.mktemp("journal") / "usage.jsonl"
    with FakeDiscord(heartbeat_interval_ms=1000) as fake, FakeLLM(token_delay=0.05) as llm:
        guild = fake.add_guild(name="Promises", channels=[f"p-{n}" for n in range(20)])
        env = {**ENV, "OPENAI_API_BASE": llm.url, "USAGE_JOURNAL_PATH": str(journal)}
        with World.running(fake, llm, guild, django_db_blocker, **env) as world:
            yield world


@pytest.mark.django_db(transaction=True)
def test_the_database_is_set_up_for_this_module():
    """Marked so pytest-django creates the database before the module's bot starts (see test_bot_llm_e2e)."""
    assert not Guild.objects.exists()


@pytest.fixture
def w(world, django_db_blocker):
    with django_db_blocker.unblock():
        world.fresh(model=OFFLINE)
        yield world


def _answers(w: World) -> list[str]:
    return [w.content(m) for m in w.sent() if "offline model" in w.content(m)]


def test_a_burst_gets_exactly_the_per_minute_limit(w):
    w.configure(user_messages_per_minute=5)
    users = w.users(8)
    for n in range(8):  # 8 users x 8 messages, back to back, interleaved
        for user in users:
            w.ask(f"burst {n}", user)
    rows = w.rows(64)
    outcomes = [row.outcome for row in rows]
    assert outcomes.count("ok") == 40 and outcomes.count("user_limited") == 24, outcomes
    w.fake.wait_for(lambda: len(w.sent()) >= 48, timeout=30)
    time.sleep(0.5)
    assert len(_answers(w)) == 40
    notices = [w.content(m) for m in w.sent() if "faster than this server allows" in w.content(m)]
    assert len(notices) == 8, "one notice per user, not one per refused message"


def test_a_burst_gets_exactly_the_per_day_limit(w):
    w.configure(user_messages_per_day=3)
    users = w.users(6)
    for n in range(5):
        for user in users:
            w.ask(f"day {n}", user)
    outcomes = [row.outcome for row in w.rows(30)]
    assert outcomes.count("ok") == 18 and outcomes.count("user_limited") == 12, outcomes


def test_a_burst_spends_at_most_the_budget_plus_one_request(w):
    budget = Decimal("0.01")
    w.configure(model=PRICED, daily_budget_usd=budget, max_output_tokens=1024)
    w.llm.reply_with(" ".join(["word"] * 1000))  # about $0.008 an answer
    users = w.users(10)
    for user in users:
        w.ask("spend", user)
    rows = w.rows(10)
    spent = sum((row.cost_usd for row in rows), Decimal(0))
    one_request = registry.estimate_cost(PRICED, 200, 1024)
    assert spent <= budget + one_request, (spent, [r.outcome for r in rows])
    answered = [row for row in rows if row.outcome == "ok"]
    assert len(answered) == 2 and len(w.llm.requests) == 2
    assert [row.outcome for row in rows].count("over_budget") == 8


def test_a_429_storm_past_discord_py_retries_is_waited_out(w):
    w.configure(model="openai/gpt-4o-mini")
    w.llm.reply_with("made it through")
    # discord.py tries a 429 five times; the storm outlasts that once, then clears.
    w.fake.fail_next("POST", r"/channels/\d+/messages$", status=429, times=6, retry_after=0.05)
    [user] = w.users(1)
    w.ask("through the storm", user)
    [row] = w.rows(1)
    assert row.outcome == "ok"
    assert [w.content(m) for m in w.sent()] == ["made it through"]


def test_a_persistent_429_storm_records_every_call(w):
    w.configure(model="openai/gpt-4o-mini")
    w.fake.fail_next("POST", r"/channels/\d+/messages$", status=429, times=10_000, retry_after=0.01)
    users = w.users(3)
    for user in users:
        w.ask("nobody will see this", user)
    rows = w.rows(3, timeout=60)
    assert [row.outcome for row in rows] == ["undelivered"] * 3
    assert len(w.llm.requests) == 3, "every provider call has its usage row"
    assert all(row.output_tokens > 0 for row in rows), "the tokens paid for are counted"
    w.fake.clear_failures()


def test_a_cut_stream_is_finished_visibly(w):
    w.configure(model="openai/gpt-4o-mini", streaming=True)
    w.llm.reply_with("one two three four five six seven eight")
    w.llm.enqueue("cut")
    [user] = w.users(1)
    w.ask("tell me", user)
    [row] = w.rows(1)
    assert row.outcome == "provider_error"
    [message] = w.sent()
    text = w.content(message)
    assert text.startswith("one two three") and CUT_NOTE in text


def test_a_cut_stream_is_answered_again_by_the_fallback(w):
    w.configure(model="openai/gpt-4o-mini", streaming=True, fallback_model="openai/gpt-4.1-mini")
    w.llm.reply_with("one two three four five six seven eight")
    w.llm.enqueue("cut")
    [user] = w.users(1)
    w.ask("tell me", user)
    # One question, one row: the fallback's answer, with what the cut attempt used added to it.
    [row] = w.rows(1)
    assert (row.outcome, row.model) == ("ok", "openai/gpt-4.1-mini")
    assert row.output_tokens > 8, "the fallback's 8 words plus the cut attempt's"
    assert [r.model for r in w.llm.requests] == ["gpt-4o-mini", "gpt-4.1-mini"]
    w.fake.wait_for(lambda: len(w.sent()) >= 2 and w.content(w.sent()[1]).endswith("eight"), timeout=20)
    cut, again = (w.content(m) for m in w.sent())
    assert CUT_NOTE in cut and "Trying another model" in cut
    assert again == "one two three four five six seven eight"


def test_a_malformed_answer_ends_in_a_notice(w):
    w.configure(model="openai/gpt-4o-mini")
    w.llm.enqueue("malformed")
    [user] = w.users(1)
    w.ask("hello?", user)
    [row] = w.rows(1)
    assert row.outcome != "ok"
    w.fake.wait_for(lambda: w.sent(), timeout=20)
    assert "Sorry" in w.content(w.sent()[0])


def test_a_guild_missing_from_the_database_is_added_and_answered(w):
    Guild.objects.filter(discord_id=int(w.guild["id"])).update(is_active=False)
    time.sleep(1.1)
    [user] = w.users(1)
    w.ask("are you there?", user)
    [row] = w.rows(1)
    assert row.outcome == "ok"
    assert Guild.objects.get(discord_id=int(w.guild["id"])).is_active
    assert len(_answers(w)) == 1


# --- shutdown: a bot of its own ------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("grace", ["30", "0.5"])
def test_sigterm_mid_stream_finishes_or_marks_the_answer(grace, tmp_path):
    words = [f"w{i}" for i in range(40)]
    with FakeDiscord(heartbeat_interval_ms=1000) as fake, FakeLLM(token_delay=0.15) as llm:
        guild = fake.add_guild(name="Shutdown", channels=["s-0"])
        channel = int(guild["channels"][0]["id"])
        env = {
            **ENV,
            "OPENAI_API_BASE": llm.url,
            "BOT_SHUTDOWN_GRACE_SECONDS": grace,
            "USAGE_JOURNAL_PATH": str(tmp_path / "journal.jsonl"),
        }
        with BotProcess(fake, **env) as bot:
            bot.wait_ready(timeout=60)
            GuildSettings.objects.filter(guild__discord_id=int(guild["id"])).update(
                model="openai/gpt-4o-mini", streaming=True, version=F("version") + 1
            )
            llm.reply_with(" ".join(words))
            llm.default_behaviour = "slow"  # 40 words at 0.15 s: 6 s of streaming
            user = fake.add_user("leaver")
            fake.send_user_message(channel, f"<@{fake.bot_user['id']}> talk slowly", author=user)
            fake.wait_for(lambda: fake.edits or None, timeout=30)  # the answer is on its way
            bot.popen.send_signal(signal.SIGTERM)
            assert bot.popen.wait(60) == 0
        [message] = [m for m in fake.sent_messages if m["channel_id"] == channel]
        text = fake.messages[message["id"]]["content"]
        [row] = Usage.objects.filter(channel_id=channel)
        if grace == "30":
            assert text == " ".join(words), "the answer in progress was allowed to finish"
            assert row.outcome == "ok" and row.output_tokens == 40
        else:
            assert text.startswith("w0 w1") and "Interrupted: Parley is restarting" in text
            assert row.outcome == "interrupted" and row.output_tokens > 0
        assert Usage.objects.aggregate(s=Sum("output_tokens"))["s"] == row.output_tokens


# --- the database away for a while: a bot of its own, reaching PostgreSQL through a proxy we can cut ----------
def _outage(
    fake: FakeDiscord, proxy: TcpProxy, channel: int, user: dict, n: int
) -> list[tuple[float, dict, dict]]:
    """``n`` questions, one a second, with the database away; returns (asked at, question, reply) triples."""
    fake.reset_records()
    mention = f"<@{fake.bot_user['id']}>"
    proxy.down()
    asked = []
    for i in range(n):
        asked.append((time.time(), fake.send_user_message(channel, f"{mention} q{i}", author=user)))
        time.sleep(1)
    replies = fake.wait_for(lambda: list(fake.sent_messages) if len(fake.sent_messages) >= n else None, 30)
    proxy.up()
    by_question = {m["reply_to"]: m for m in replies}
    return [(at, question, by_question[int(question["id"])]) for at, question in asked]


@pytest.mark.django_db(transaction=True)
def test_the_database_away_loses_no_message_and_no_usage_row(tmp_path):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("cuts the network between the bot and PostgreSQL (make test-services)")
    db = connection.settings_dict
    with (
        FakeDiscord(heartbeat_interval_ms=1000) as fake,
        TcpProxy(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)) as proxy,
    ):
        guild = fake.add_guild(name="Outage", channels=["general"])
        channel = int(guild["channels"][0]["id"])
        env = {
            **ENV,
            "DATABASE_URL": f"postgres://{db['USER']}@127.0.0.1:{proxy.port}/{db['NAME']}",
            "DATABASE_POOL_TIMEOUT": "1",
            "BOT_DATABASE_ATTEMPTS": "2",
            "BOT_DATABASE_RETRY_SECONDS": "0.2",
            "BOT_USAGE_JOURNAL_AFTER": "2",
            "USAGE_JOURNAL_PATH": str(tmp_path / "journal.jsonl"),
        }
        user = fake.add_user("patient")
        settings_row = GuildSettings.objects.filter(guild__discord_id=int(guild["id"]))
        with BotProcess(fake, **env) as bot:
            bot.wait_ready(timeout=60)
            settings_row.update(model=OFFLINE, streaming=False, version=F("version") + 1)
            fake.send_user_message(channel, f"<@{fake.bot_user['id']}> warm up", author=user)
            fake.wait_for(lambda: Usage.objects.count() == 1 or None, timeout=20)

            # No limits: the cached settings answer through 8 s without the database; rows wait in the journal.
            answered = _outage(fake, proxy, channel, user, 8)
            fake.wait_for(lambda: Usage.objects.count() == 9 or None, timeout=60)

            # Limits on: nobody can check them, so each asker hears so within the retries' bound.
            settings_row.update(user_messages_per_day=100, version=F("version") + 1)
            time.sleep(6)  # the bot tries the database again 5 s after its last failure
            fake.send_user_message(channel, f"<@{fake.bot_user['id']}> limits on?", author=user)
            fake.wait_for(lambda: Usage.objects.filter(outcome="ok").count() == 10 or None, timeout=20)
            refused = _outage(fake, proxy, channel, user, 4)
            fake.wait_for(lambda: Usage.objects.count() == 14 or None, timeout=60)
    delays = [round(reply["t"] - at, 1) for at, _question, reply in answered + refused]
    print(f"seconds from question to answer while the database was away: {delays}")
    assert max(delays) < 8, f"answered within the retries' bound, not after the outage: {delays}"
    assert all("offline model" in fake.messages[r["id"]]["content"] for _, _, r in answered)
    assert all("can't check this server's limits" in fake.messages[r["id"]]["content"] for _, _, r in refused)
    outcomes = list(Usage.objects.order_by("created_at", "id").values_list("outcome", flat=True))
    assert outcomes == ["ok"] * 10 + ["unchecked"] * 4, outcomes
