"""/dashboard/guilds/<id>/inspector/: the last trigger decisions, newest first, filtered, keyset-paginated."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from botcore.models import TriggerDecision
from botcore.views import DECISIONS_PER_PAGE
from tests.conftest import auth_queries

HTMX = {"HTTP_HX_REQUEST": "true"}
GENERAL, BOTS = 222222222222222221, 222222222222222222
Reason = TriggerDecision.Reason


def url(guild) -> str:
    return reverse("botcore:inspector", args=[guild.discord_id])


def decide(guild, n: int = 1, **fields) -> list[TriggerDecision]:
    values = {"channel_id": GENERAL, "author_id": 5005, "reason": Reason.NOT_ADDRESSED, **fields}
    return [TriggerDecision.objects.create(guild=guild, message_id=900000 + i, **values) for i in range(n)]


def test_it_works(client, guild, bob, carol):
    decide(guild, reason=Reason.CHANNEL, channel_id=BOTS)
    [answered] = decide(
        guild,
        reason=Reason.ANSWERED,
        trigger="mention",
        usage_outcome="ok",
        model="openai/gpt-4o-mini",
        input_tokens=12,
        output_tokens=34,
        latency_ms=56,
        cost_usd=Decimal("0.000123"),
        author_id=carol.discord_id,
    )
    client.force_login(bob)
    html = client.get(url(guild)).content.decode()
    assert html.index("Answered</span>") < html.index("Not an allowed channel</span>"), "newest first"
    jump = f"https://discord.com/channels/{guild.discord_id}/{GENERAL}/{answered.message_id}"
    assert f'href="{jump}"' in html and "#general" in html and "#bots" in html
    assert "Carol" in html and "12+34 tokens · 56 ms · $0.000123" in html and "(mention)" in html
    assert 'aria-current="page">Answer inspector</a>' in html  # the sidebar's link


def test_it_checks_membership(client, guild, dave):
    client.force_login(dave)
    assert client.get(url(guild)).status_code == 404


def test_it_requires_role(client, guild, carol):
    client.force_login(carol)
    assert client.get(url(guild)).status_code == 403
    # ...and a user's sidebar does not offer it.
    html = client.get(reverse("guilds:settings", args=[guild.discord_id])).content.decode()
    assert "Answer inspector" not in html


def test_filters(client, guild, bob):
    decide(guild, reason=Reason.BLOCKED, author_id=7007)
    decide(guild, reason=Reason.COOLDOWN, channel_id=BOTS)
    decide(guild, reason=Reason.ANSWERED)
    client.force_login(bob)
    by_reason = client.get(url(guild), {"reason": "blocked"}, **HTMX).content.decode()
    assert by_reason.lstrip().startswith('<div id="decisions"')
    assert "Blocked user</span>" in by_reason and "Answered</span>" not in by_reason
    by_channel = client.get(url(guild), {"channel": BOTS}).content.decode()
    assert "Cooldown</span>" in by_channel and "Blocked user</span>" not in by_channel
    assert f'<option value="{BOTS}" selected>#bots</option>' in by_channel
    by_author = client.get(url(guild), {"author": "7007"}).content.decode()
    assert "Blocked user</span>" in by_author and "Cooldown</span>" not in by_author
    # A value that names nothing is ignored: the page shows everything, never an error.
    for junk in ({"reason": "nope"}, {"author": "²"}, {"channel": "9" * 25}, {"before": "x"}):
        page = client.get(url(guild), junk)
        assert page.status_code == 200 and page.content.decode().count('<tr id="decision-') == 3


def test_keyset_pagination(client, guild, bob):
    rows = decide(guild, DECISIONS_PER_PAGE + 5, reason=Reason.NOT_ADDRESSED)
    client.force_login(bob)
    first = client.get(url(guild), {"reason": "not_addressed"}).content.decode()
    assert first.count('<tr id="decision-') == DECISIONS_PER_PAGE
    older = f"?reason=not_addressed&amp;before={rows[5].pk}"
    assert f'href="{older}#decisions"' in first and f'hx-get="{older}"' in first
    second = client.get(url(guild), {"reason": "not_addressed", "before": rows[5].pk}).content.decode()
    assert second.count('<tr id="decision-') == 5 and "Older decisions" not in second
    assert 'href="?reason=not_addressed#decisions"' in second  # back to the newest, filters kept


def test_text_is_shown_only_when_recorded(client, guild, bob):
    decide(guild, content="why will you not answer me")
    client.force_login(bob)
    assert "why will you not answer me" in client.get(url(guild)).content.decode()


def test_another_guilds_decisions_are_not_shown(client, guild, bob):
    from guilds.models import Guild

    other = Guild.objects.create_with_settings(
        discord_id=999999999999999999, name="Other", owner_discord_id=1
    )
    decide(other, reason=Reason.BLOCKED)
    client.force_login(bob)
    assert "Blocked user</span>" not in client.get(url(guild)).content.decode()


@pytest.mark.parametrize("rows", [5, 60])
def test_query_count_is_constant(client, guild, bob, rows, django_assert_num_queries):
    for i in range(rows):
        decide(guild, author_id=8000 + i)
    client.force_login(bob)
    client.get(url(guild))
    with django_assert_num_queries(auth_queries() + 4):  # membership+guild, decisions, channels, authors
        assert client.get(url(guild)).status_code == 200
