"""botcore/decisions.py: which ignored messages get a row and with which reason, an answer's end as columns, and
the batch write that keeps each guild to its newest 500 rows."""

from __future__ import annotations

import time
from decimal import Decimal
from types import SimpleNamespace

import pytest

from botcore import decisions
from botcore.decisions import KEEP, Reason, decisions_write, ignored_because, noteworthy, outcome_fields
from botcore.models import TriggerDecision
from guilds.effective import SettingsSnapshot
from guilds.models import ChannelSettings, Guild, GuildSettings
from llm.answering import Outcome
from llm.errors import LLMTimeout
from llm.limits import Refusal
from llm.request import Reply

GENERAL, RANDOM, BUSY = 10, 20, 30
BOT_MENTION = {"mentioned": True, "reply_to_bot": False}
NOTHING = {"mentioned": False, "reply_to_bot": False}


def snapshot(**fields: object) -> SettingsSnapshot:
    overrides = {BUSY: ChannelSettings(channel_id=BUSY, mode=ChannelSettings.Mode.EVERYONE)}
    return SettingsSnapshot(guild_id=1, row=GuildSettings(**fields), overrides=overrides)


def test_ordinary_chatter_is_not_recorded_but_what_was_meant_for_the_bot_is():
    plain = snapshot()
    assert not noteworthy(plain, author_id=5, channel_id=GENERAL, **NOTHING)
    assert noteworthy(plain, author_id=5, channel_id=GENERAL, **BOT_MENTION)
    assert noteworthy(plain, author_id=5, channel_id=GENERAL, mentioned=False, reply_to_bot=True)
    assert noteworthy(snapshot(target_user_ids=[5]), author_id=5, channel_id=GENERAL, **NOTHING)
    assert noteworthy(snapshot(allowed_channel_ids=[GENERAL]), author_id=5, channel_id=GENERAL, **NOTHING)
    assert noteworthy(plain, author_id=5, channel_id=BUSY, **NOTHING), "a channel that answers everyone"


@pytest.mark.parametrize(
    ("fields", "channel", "addressed", "reason"),
    [
        ({"enabled": False}, GENERAL, BOT_MENTION, Reason.DISABLED),
        ({"allowed_channel_ids": [RANDOM]}, GENERAL, BOT_MENTION, Reason.CHANNEL),
        ({"blocked_user_ids": [5]}, GENERAL, BOT_MENTION, Reason.BLOCKED),
        ({"reply_on_mention": False}, GENERAL, BOT_MENTION, Reason.MENTIONS_OFF),
        ({}, BUSY, NOTHING, Reason.COOLDOWN),
        ({"allowed_channel_ids": [GENERAL]}, GENERAL, NOTHING, Reason.NOT_ADDRESSED),
    ],
)
def test_why_a_message_was_ignored(fields, channel, addressed, reason):
    assert ignored_because(snapshot(**fields), author_id=5, channel_id=channel, **addressed) == reason


def test_an_answers_end_as_columns():
    reply = Reply(
        text="hi",
        model="openai/gpt-4o-mini",
        input_tokens=3,
        output_tokens=4,
        cost_usd=Decimal("0.5"),
        latency_ms=7,
    )
    assert outcome_fields(Outcome("answered", reply=reply, usage_outcome="ok")) == {
        "reason": Reason.ANSWERED,
        "usage_outcome": "ok",
        "model": "openai/gpt-4o-mini",
        "input_tokens": 3,
        "output_tokens": 4,
        "latency_ms": 7,
        "cost_usd": Decimal("0.5"),
    }
    refusal = Refusal("over_budget", "no", ("k",), 0.0)
    assert outcome_fields(Outcome("refused", refusal=refusal, usage_outcome="over_budget")) == {
        "reason": Reason.LIMIT,
        "usage_outcome": "over_budget",
    }
    error = LLMTimeout("slow", model="openai/gpt-4o")
    error.latency_ms = 5000
    failed = outcome_fields(Outcome("failed", error=error, usage_outcome="timeout"))
    assert failed == {
        "reason": Reason.FAILED,
        "usage_outcome": "timeout",
        "model": "openai/gpt-4o",
        "latency_ms": 5000,
    }


def message(guild_id: int, n: int, content: str = "hello there") -> SimpleNamespace:
    return SimpleNamespace(
        id=n,
        content=content,
        guild=SimpleNamespace(id=guild_id),
        channel=SimpleNamespace(id=GENERAL),
        author=SimpleNamespace(id=5),
    )


def test_the_text_is_kept_only_with_log_message_content(settings):
    settings.LOG_MESSAGE_CONTENT = False
    assert decisions.decision_fields(message(1, 1), reason=Reason.ANSWERED)["content"] == ""
    settings.LOG_MESSAGE_CONTENT = True
    assert decisions.decision_fields(message(1, 1), reason=Reason.ANSWERED)["content"] == "hello there"


@pytest.mark.django_db
def test_each_guild_keeps_its_newest_500(guild):
    other = Guild.objects.create_with_settings(discord_id=999, name="Other", owner_discord_id=1)
    rows = [
        decisions.decision_fields(message(guild.discord_id, n), reason=Reason.ANSWERED)
        for n in range(KEEP - 10)
    ]
    assert decisions_write(rows) == KEEP - 10
    decisions_write([decisions.decision_fields(message(999, 1), reason=Reason.BLOCKED)])
    later = [
        decisions.decision_fields(message(guild.discord_id, n), reason=Reason.COOLDOWN)
        for n in range(1000, 1030)
    ]
    decisions_write(later)
    kept = TriggerDecision.objects.filter(guild=guild)
    assert kept.count() == KEEP
    assert min(kept.values_list("message_id", flat=True)) == 20, "the 20 oldest went"
    assert TriggerDecision.objects.filter(guild=other).count() == 1, "another guild's rows are not touched"
    # A guild the database does not know: its rows are dropped, the others written.
    assert decisions_write([decisions.decision_fields(message(4242, 1), reason=Reason.BLOCKED)]) == 0


@pytest.mark.asyncio
async def test_the_buffer_holds_rows_while_the_database_is_away_and_is_bounded(monkeypatch):
    from config.probes import database_outage

    buffer = decisions._DecisionBuffer()
    monkeypatch.setattr(database_outage, "_until", time.monotonic() + 60)  # the database failed moments ago
    monkeypatch.setattr(decisions, "MAX_PENDING", 3)
    for n in range(5):
        buffer.rows.append({"message_id": n})
    await buffer.flush()
    assert [row["message_id"] for row in buffer.rows] == [2, 3, 4], "the oldest dropped first"
