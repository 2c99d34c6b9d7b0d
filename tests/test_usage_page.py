"""The usage page: totals, a daily chart, top users and models, budget used today (ADMIN and above)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import User
from llm.charts import daily_bars
from llm.models import Usage
from llm.views import month_forecast
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
    assert report["top_users"][0]["name"] == "Alice"  # the display name
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


def test_it_speaks_in_names(client, bob, alice, guild):
    User.objects.filter(pk=alice.pk).update(global_name="Alice Liddell")
    add_usage(guild, user=alice.discord_id, cost="0.30", model="anthropic/claude-haiku-4-5")
    add_usage(guild, user=4242, cost="0.20", model="openai/some-new-model")
    client.force_login(bob)
    html = client.get(url(guild)).content.decode()
    assert f'<img class="avatar small" src="{alice.avatar_url}" alt=""> Alice Liddell' in html
    assert "unknown user (4242)" in html
    assert "<td>Claude Haiku 4.5 (Anthropic)</td>" in html and "anthropic/claude-haiku-4-5" not in html
    assert "<td>openai/some-new-model</td>" in html  # a model Parley does not list keeps its id


def test_the_chart_has_axes_dates_a_legend_and_a_tooltip_a_day(client, bob, guild):
    add_usage(guild, cost="0.04", tokens=1200)
    add_usage(guild, days_ago=2, cost="0.01", tokens=100)
    client.force_login(bob)
    html = client.get(url(guild)).content.decode()
    svg = html.split("<svg", 1)[1].split("</svg>", 1)[0]
    today = timezone.now()
    assert f">{today:%b} {today.day}</text>" in svg  # the last day is labelled
    assert ">2.5k</text>" in svg and ">$0.05</text>" in svg  # the axes' tops: 2,400 tokens, $0.04
    assert svg.count("<rect") == 30 and svg.count("<title>") == 60  # a bar and a dot a day
    assert f"<title>{today:%a %b} {today.day}: 2,400 tokens, $0.0400</title>" in svg
    assert "Tokens a day (left axis)" in html and "Cost a day (right axis)" in html


def test_an_empty_server_says_so(client, bob, guild):
    client.force_login(bob)
    response = client.get(url(guild))
    html = response.content.decode()
    assert response.context["chart"].empty
    assert "No usage yet." in html and "<svg" not in html and "peak" not in html and "$1.0000" not in html
    assert "No calls yet." in html and "so no forecast yet" in html


def test_chart_scales_round_up_to_round_numbers():
    days = [
        {"day": datetime(2026, 11, d, tzinfo=UTC).date(), "tokens": 0, "cost": Decimal(0)}
        for d in range(1, 31)
    ]
    days[-1] = {**days[-1], "tokens": 730, "cost": Decimal("1.2")}
    chart = daily_bars(days)
    assert [t.tokens for t in chart.ticks] == ["0", "200", "400", "600", "800", "1k"]
    assert [t.cost for t in chart.ticks] == ["$0.00", "$0.40", "$0.80", "$1.20", "$1.60", "$2.00"]
    assert [d.day.day for d in chart.dates] == [1, 6, 11, 16, 21, 26, 30]
    assert chart.bars[-1].y == pytest.approx(
        chart.top + (chart.bottom - chart.top) * (1 - 730 / 1000), abs=0.1
    )


def test_month_to_date_and_forecast(guild):
    def at(when: datetime, cost: str) -> None:
        row = add_usage(guild, cost=cost)
        Usage.objects.filter(pk=row.pk).update(created_at=when)

    at(datetime(2026, 10, 31, 23, 0, tzinfo=UTC), "5.00")  # last month: not counted
    at(datetime(2026, 11, 1, 0, 30, tzinfo=UTC), "1.00")
    at(datetime(2026, 11, 10, 12, 0, tzinfo=UTC), "2.00")
    month = month_forecast(guild.pk, now=datetime(2026, 11, 10, 18, 0, tzinfo=UTC))
    # $3 in the 10 days begun, so $0.30 a day, times the 30 days of November.
    assert (month["cost"], month["days_so_far"], month["days"]) == (Decimal("3.00"), 10, 30)
    assert month["forecast"] == Decimal("9.0000")


def test_the_page_explains_the_forecast(client, bob, guild):
    add_usage(guild, cost="0.50")
    client.force_login(bob)
    html = " ".join(client.get(url(guild)).content.decode().split())
    now = timezone.now()
    assert "Heading for <strong>$" in html and f"times {month_forecast(guild.pk)['days']} days" in html
    assert f"the spend of the {now.day} day" in html


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
    # The access helper, five report queries (the top users' names and avatars among them), the sidebar's user,
    # the month so far: constant whatever the number of rows.
    with django_assert_num_queries(auth_queries() + 7):
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
