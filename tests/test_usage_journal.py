"""Usage rows are never dropped: the journal keeps what the database would not take, and gives it back."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import pytest

from llm import usage
from llm.models import Usage

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def journal(tmp_path, settings):
    settings.USAGE_JOURNAL_PATH = str(tmp_path / "usage.jsonl")
    return tmp_path / "usage.jsonl"


def _row(user: int, **extra) -> dict:
    return usage.usage_fields(
        guild_pk=None, channel_id=1, user_id=user, model="offline/parley-offline", source="discord", **extra
    )


def test_a_journal_is_replayed_with_its_figures_and_emptied(journal):
    usage._journal_append([_row(1, cost_usd=Decimal("0.00012345"), input_tokens=7), _row(2)])
    assert usage.usage_replay_journal() == 2
    assert not journal.exists()
    first = Usage.objects.get(user_discord_id=1)
    assert (first.cost_usd, first.input_tokens) == (Decimal("0.00012345"), 7)
    assert usage.usage_replay_journal() == 0, "nothing twice"
    assert Usage.objects.count() == 2


def test_a_cut_line_is_set_aside_and_the_rest_replayed(journal):
    usage._journal_append([_row(1), _row(2)])
    with journal.open("a") as cut:
        cut.write('{"guild_id": null, "user_discord_id": 3, "cost_u')  # a crash in the middle of a write
    assert usage.usage_replay_journal() == 2
    assert sorted(Usage.objects.values_list("user_discord_id", flat=True)) == [1, 2]
    assert journal.with_suffix(".bad").read_text().startswith('{"guild_id": null, "user_discord_id": 3')


def test_a_replay_left_by_a_dead_process_is_taken(journal):
    usage._journal_append([_row(5)])
    journal.rename(journal.with_name(f"{journal.name}.999999999.replaying"))
    assert usage.usage_replay_journal() == 1
    assert Usage.objects.filter(user_discord_id=5).exists()


def test_a_row_the_database_refuses_does_not_block_the_others(journal):
    buffer = usage._UsageBuffer()
    buffer.rows = [_row(1), {**_row(2), "guild_id": 987654321}, _row(3)]  # no such guild: the FK refuses it
    asyncio.run(buffer.flush())
    assert sorted(Usage.objects.values_list("user_discord_id", flat=True)) == [1, 3]
    [aside] = journal.with_suffix(".bad").read_text().splitlines()
    assert json.loads(aside)["user_discord_id"] == 2
    assert buffer.rows == [] and buffer.failures == 0


def test_reservations_of_a_dead_process_are_settled_with_their_cost():
    from datetime import timedelta

    from django.utils import timezone

    from llm.limits import reservations_settle_stale

    old = Usage.objects.create(
        **{
            **_row(1, cost_usd=Decimal("0.01")),
            "outcome": "pending",
            "created_at": timezone.now() - timedelta(hours=1),
        }
    )
    fresh = Usage.objects.create(**{**_row(2), "outcome": "pending"})
    assert reservations_settle_stale() == 1
    old.refresh_from_db(), fresh.refresh_from_db()
    assert (old.outcome, old.cost_usd) == ("interrupted", Decimal("0.01")), "the held cost stays counted"
    assert fresh.outcome == "pending", "an answer in progress keeps its reservation"
