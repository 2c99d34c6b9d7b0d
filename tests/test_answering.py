"""``llm.answering.answer``: the one path from a question to an answer ends in one outcome and one usage row, even
when the conversation cannot be gathered."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync

from guilds.effective import SettingsSnapshot
from llm.answering import Asker, answer
from llm.errors import GENERIC_NOTICE
from llm.limits import LimitGate
from llm.models import Usage
from llm.prompting import Turn

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_conversation_that_cannot_be_gathered_ends_in_a_notice_and_a_row(guild):
    async def broken_history() -> list[Turn]:
        raise ConnectionResetError("the reply chain could not be fetched")

    outcome = async_to_sync(answer)(
        settings=SettingsSnapshot.of(guild).effective(None),
        turns=broken_history,
        asker=Asker(4242, 7, Usage.Source.DISCORD),
        gate=LimitGate(),
        record_later=False,
    )
    assert (outcome.status, outcome.notice, outcome.reply) == ("failed", GENERIC_NOTICE, None)
    row = Usage.objects.get()
    assert (row.user_discord_id, row.guild_id, row.outcome, row.cost_usd) == (
        4242,
        guild.pk,
        "provider_error",
        0,
    )


def test_a_gathered_conversation_is_answered_with_its_row(guild):
    async def history() -> list[Turn]:
        return [Turn(role="user", text="hello there", speaker="Ann")]

    outcome = async_to_sync(answer)(
        settings=SettingsSnapshot.of(guild).effective(None),
        turns=history,
        asker=Asker(4242, 7, Usage.Source.DISCORD),
        gate=LimitGate(),
        record_later=False,
    )
    assert outcome.status == "answered" and "Ann: hello there" in outcome.reply.text
    assert Usage.objects.get().outcome == "ok"
