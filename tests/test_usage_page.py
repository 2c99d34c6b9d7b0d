"""The usage page: totals, a daily chart, top users and models, budget used today (ADMIN and above)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from llm.models import Usage
from tests.conftest import auth_queries


def url(guild) -> str:
    return f"/dashboard/guilds/{guild.discord_id}/usage/"


def add_usage(
    guild,
    *,
    days_ago: int = 0,
    user: int = 1001,
    model: str = "openai/gpt-4o-mini",
    cost: str = "0.01",
    tokens: int = 100,
    outcome: str = "ok",
):
    row = Usage.objects.create(
        guild=guild,
        user_discord_id=user,
        model=model,
        input_tokens=tokens,
        output_tokens=tokens,
        cost_usd=Decimal(cost),
        outcome=outcome,
    )
    if days_ago:
        Usage.objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(days=days_ago))
    return row


def test_it_works(client, bob, alice, guild):
    add_usage(guild, cost="0.02", user=alice.discord_id)
    add_usage(guild, days_ago=3, cost="0.05", model="anthropic/claude-haiku-4-5", user=bob.discord_id)
    add_usage(guild, days_ago=20, cost="0.10")
    add_usage(guild, outcome="over_budget", cost="0", tokens=0)
    guild.settings.daily_budget_usd = Decimal("0.08")
    guild.settings.save()
    client.force_login(bob)
    response = client.get(url(guild))
    assert response.status_code == 200
    report = response.context["report"]
    assert report["today"]["cost"] == Decimal("0.02")
    assert report["today"]["calls"] == 1 and report["today"]["refused"] == 1
    assert report["week"]["cost"] == Decimal("0.07")
    assert report["month"]["cost"] == Decimal("0.17")
    assert report["month"]["tokens"] == 600
    assert len(report["daily"]) == 30 and report["daily"][-1]["cost"] == Decimal("0.02")
    assert report["top_users"][0]["name"] == "alice"
    assert {row["model"] for row in report["top_models"]} == {
        "openai/gpt-4o-mini",
        "anthropic/claude-haiku-4-5",
    }
    assert response.context["budget_percent"] == 25
    content = response.content.decode()
    assert "<svg" in content and "<rect" in content and "cost-line" in content
    assert "https://" not in content.split("<svg", 1)[1].split("</svg>", 1)[0], (
        "no external resources in the chart"
    )


def test_it_checks_membership(client, dave, guild):
    client.force_login(dave)
    assert client.get(url(guild)).status_code == 404


def test_it_requires_role(client, carol, guild):
    client.force_login(carol)
    assert client.get(url(guild)).status_code == 403


def test_staff_sees_it(client, staff, guild):
    client.force_login(staff)
    assert client.get(url(guild)).status_code == 200


@pytest.mark.parametrize("rows", [1, 60])
def test_query_count_is_constant(client, bob, guild, rows, django_assert_num_queries):
    for n in range(rows):
        add_usage(guild, days_ago=n % 30, user=5000 + n, model=f"openai/model-{n % 7}")
    client.force_login(bob)
    # The access helper, five report queries, the sidebar's user: constant whatever the number of rows.
    with django_assert_num_queries(auth_queries() + 6):
        assert client.get(url(guild)).status_code == 200


def test_operators_see_what_direct_messages_cost(client, staff, guild, settings):
    settings.DM_DAILY_BUDGET_USD = Decimal("1.00")
    add_usage(None, user=4242, cost="0.25")
    add_usage(guild, user=1001, cost="0.50")  # a server's usage is not a direct message's
    client.force_login(staff)
    response = client.get("/dashboard/direct-messages/usage/")
    assert response.status_code == 200
    report = response.context["report"]
    assert report["today"]["cost"] == Decimal("0.25")
    assert [row["user_discord_id"] for row in report["top_users"]] == [4242]
    assert response.context["budget_percent"] == 25
    assert "Usage of direct messages" in response.content.decode()


def test_only_operators_see_direct_message_usage(client, alice):
    client.force_login(alice)
    assert client.get("/dashboard/direct-messages/usage/").status_code == 403
