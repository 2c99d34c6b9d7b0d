"""Dashboard pages of the LLM layer: a guild's usage and the prompt playground (ADMIN and above)."""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_http_methods

from guilds.access import HtmxHttpRequest, get_guild_for
from guilds.models import Membership
from llm import charts
from llm.client import LLMRequest, generate
from llm.errors import LLMError
from llm.forms import PlaygroundForm
from llm.models import Usage
from llm.usage import spent_today, usage_record, usage_report

ADMIN = Membership.Role.ADMIN


@login_required
@require_GET
def usage_page(request: HtmxHttpRequest, guild_id: int) -> HttpResponse:
    guild, membership = get_guild_for(request, guild_id, min_role=ADMIN)
    report = usage_report(guild.pk, days=30)
    budget = guild.settings.daily_budget_usd
    context = {
        "guild": guild,
        "membership": membership,
        "section": "usage",
        "report": report,
        "chart": charts.daily_bars(report["daily"]),
        "budget": budget,
        "budget_percent": min(100, round(report["today"]["cost"] / budget * 100)) if budget else None,
    }
    return render(request, "llm/usage.html", context)


def _run(
    form: PlaygroundForm, guild_pk: int, user_discord_id: int | None, temperature: float, max_tokens: int
) -> dict[str, Any]:
    """One playground call; it counts toward usage like any other."""
    data = form.cleaned_data
    messages = [{"role": "user", "content": data["message"]}]
    if data["system_prompt"]:
        messages.insert(0, {"role": "system", "content": data["system_prompt"]})
    request = LLMRequest(
        model=data["model"], messages=messages, temperature=temperature, max_tokens=max_tokens
    )
    usage = {
        "guild_pk": guild_pk,
        "channel_id": None,
        "user_id": user_discord_id,
        "model": data["model"],
        "source": Usage.Source.PLAYGROUND,
    }
    try:
        reply = async_to_sync(generate)(request)
    except LLMError as exc:
        usage_record(**usage, error=exc)
        return {"error": f"The model could not answer ({exc.kind.replace('_', ' ')}). {exc.message}"}
    usage_record(**usage, reply=reply)
    return {"reply": reply}


@login_required
@require_http_methods(["GET", "POST"])
def playground(request: HtmxHttpRequest, guild_id: int) -> HttpResponse:
    guild, membership = get_guild_for(request, guild_id, min_role=ADMIN)
    current = guild.settings
    form = PlaygroundForm(request.POST or None, current=current)
    result: dict[str, Any] = {}
    status = 200
    if request.method == "POST":
        budget = current.daily_budget_usd
        if not form.is_valid():
            status = 422
        elif budget is not None and spent_today(guild.pk) >= budget:
            result = {
                "error": f"This server has used its daily budget (${budget}); the playground counts toward it."
            }
        else:
            user_id = getattr(request.user, "discord_id", None)
            result = _run(form, guild.pk, user_id, current.temperature, current.max_output_tokens)
    context = {"guild": guild, "membership": membership, "section": "playground", "form": form, **result}
    template = "llm/playground.html#result" if request.htmx else "llm/playground.html"
    return render(request, template, context, status=status)
