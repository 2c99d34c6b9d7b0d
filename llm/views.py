"""Dashboard pages of the LLM layer: a guild's usage and the prompt playground (ADMIN and above)."""

from __future__ import annotations

import calendar
import logging
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Sum
from django.forms import Form
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import User
from config import encryption
from guilds import dashboard
from guilds.dashboard import HtmxHttpRequest
from guilds.effective import SettingsSnapshot
from guilds.models import Guild, Membership
from guilds.provider_keys import provider_key_remove, provider_key_set
from llm import charts, reasoning, registry
from llm.answering import AnswerSettings, Asker, Outcome, answer
from llm.forms import PlaygroundForm, ProviderKeyForm
from llm.limits import LimitGate, Limits
from llm.models import ProviderKey, Usage
from llm.prompting import Turn
from llm.usage import usage_report

logger = logging.getLogger(__name__)
ADMIN = Membership.Role.ADMIN

# What a failed playground call says, by ``LLMError.kind``; the provider's own message is shown folded under it.
PLAYGROUND_ERRORS = {
    "timeout": "The model took too long to answer. Try again, or pick a faster model.",
    "rate_limited": "The provider is limiting requests right now. Wait a moment and try again.",
    "unavailable": "This model's provider is not configured on this Parley (no API key). Pick another model.",
    "bad_request": "The provider refused this request: the message may be too long, or against its content "
    "policy. Try a shorter or different message.",
    "provider_error": "The provider could not answer: it may be down, or it refused Parley's API key or this "
    "model. Try again, or pick another model.",
}


def month_forecast(guild_pk: int | None, now: datetime | None = None) -> dict[str, Any]:
    """The month so far (UTC) and where it is heading: the spend so far divided by the days begun, times the
    days in the month. One query, whatever the number of rows."""
    now = now or timezone.now()
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    spent = Usage.objects.filter(guild=guild_pk, created_at__gte=start, created_at__lte=now).aggregate(
        s=Sum("cost_usd")
    )["s"]
    spent = spent or Decimal(0)
    days = calendar.monthrange(now.year, now.month)[1]
    return {
        "start": start,
        "cost": spent,
        "days_so_far": now.day,
        "days": days,
        "forecast": (spent / now.day * days).quantize(Decimal("0.0001")),
    }


def _usage_context(guild_pk: int | None, budget: Decimal | None) -> dict[str, Any]:
    """What the usage page shows, for a server or (None) for direct messages; the report's ids in words."""
    report = usage_report(guild_pk, days=30)
    for row in report["top_models"]:
        row["label"] = registry.display_name(row["model"])
    today = report["today"]["cost"]
    return {
        "report": report,
        "chart": charts.daily_bars(report["daily"]),
        "month": month_forecast(guild_pk),
        "budget": budget,
        "budget_percent": min(100, round(today / budget * 100)) if budget else None,
    }


@login_required
@require_GET
def dm_usage(request: HtmxHttpRequest) -> HttpResponse:
    """Operators only: what direct messages to the bot cost (they belong to no server)."""
    if not request.user.is_staff:
        raise PermissionDenied("Operators only.")
    return render(request, "llm/usage.html", _usage_context(None, settings.DM_DAILY_BUDGET_USD))


@login_required
@require_GET
def usage_page(request: HtmxHttpRequest, guild_id: int) -> HttpResponse:
    guild, membership = dashboard.get_guild_for(request, guild_id, min_role=ADMIN)
    context = {"guild": guild, "membership": membership, "section": "usage"}
    context |= _usage_context(guild.pk, guild.settings.daily_budget_usd)
    return render(request, "llm/usage.html", context)


def playground_settings(guild: Guild, data: dict[str, Any]) -> AnswerSettings:
    """The settings a playground call runs under: the guild's, with the draft's prompt and model, no fallback,
    and the guild's budget (per-user message limits are for Discord members, not for admins trying a prompt).
    The guild's own provider keys apply, as in Discord."""
    current = SettingsSnapshot.of(guild, with_keys=True).effective(None)
    return replace(
        current,
        system_prompt=data["system_prompt"],
        model=data["model"],
        fallback_model="",
        limits=Limits(daily_budget_usd=current.limits.daily_budget_usd, per_minute=None, per_day=None),
        reasoning_display=reasoning.HIDDEN,  # the page shows the thinking apart, not as Discord markup
    )


def playground_result(outcome: Outcome, draft: AnswerSettings, *, operator: bool) -> dict[str, Any]:
    """What the page shows of an outcome: the reply, or the error in words (the form and the socket alike); the
    provider's own message only for an ``operator``."""
    if outcome.status == "refused":
        budget = draft.limits.daily_budget_usd
        return {
            "error": f"This server has used its daily budget (${budget}); the playground counts toward it."
        }
    if outcome.error is not None:
        exc = outcome.error
        logger.warning("playground call failed: %s", exc)
        # A server's own key missing or refused: its notice says what to do (llm/keys.py).
        result = {"error": exc.notice or PLAYGROUND_ERRORS.get(exc.kind, PLAYGROUND_ERRORS["provider_error"])}
        # The provider's own words can name the operator's key (masked) or internal addresses: operators only.
        if operator:
            result["error_detail"] = str(exc)
        return result
    if outcome.reply is None:
        return {"error": outcome.notice or PLAYGROUND_ERRORS["provider_error"]}
    reply = outcome.reply
    return {"reply": reply, "model_name": registry.display_name(reply.model)}


def playground_asker(user: User) -> Asker:
    return Asker(user.discord_id, None, Usage.Source.PLAYGROUND)


def _run(form: PlaygroundForm, guild: Guild, user: User) -> dict[str, Any]:
    """One playground call through the same path as the bot's answers: it counts toward usage and the budget."""
    draft = playground_settings(guild, form.cleaned_data)
    outcome = async_to_sync(answer)(
        settings=draft,
        turns=[Turn(role="user", text=form.cleaned_data["message"])],
        asker=playground_asker(user),
        gate=LimitGate(),
        record_later=False,
    )
    return playground_result(outcome, draft, operator=user.is_staff)


@login_required
@require_http_methods(["GET", "POST"])
def playground(request: HtmxHttpRequest, guild_id: int) -> HttpResponse:
    guild, membership = dashboard.get_guild_for(request, guild_id, min_role=ADMIN)
    current = guild.settings
    form = PlaygroundForm(request.POST or None, current=current)
    result: dict[str, Any] = {}
    status = 200
    if request.method == "POST":
        if not form.is_valid():
            status = 422
        else:
            assert isinstance(request.user, User)
            result = _run(form, guild, request.user)
    context = {"guild": guild, "membership": membership, "section": "playground", "form": form, **result}
    template = "llm/playground.html#result" if request.htmx else "llm/playground.html"
    return render(request, template, context, status=status)


# --- A server's own provider keys (owners set them; admins see which are set) ---------------------------------
@dataclass(frozen=True)
class KeyRow:
    """One provider on the keys page: the server's key (masked), the instance's, and the form that sets it."""

    provider: registry.ProviderInfo
    key: ProviderKey | None
    instance_key: bool  # the instance has a key for this provider (used where the server has none)
    form: ProviderKeyForm


def _render_keys(
    request: HtmxHttpRequest,
    guild: Guild,
    membership: Membership,
    *,
    bound: ProviderKeyForm | None = None,
    status: int = 200,
) -> HttpResponse:
    stored = {key.provider: key for key in ProviderKey.objects.filter(guild=guild).select_related("set_by")}
    rows, shown = [], False
    for info in registry.key_providers():
        posted = bound is not None and bound.data.get("provider") == info.id
        form = (
            bound if posted else ProviderKeyForm(initial={"provider": info.id}, auto_id=f"key-{info.id}-%s")
        )
        assert form is not None
        shown = shown or posted
        rows.append(KeyRow(info, stored.get(info.id), registry.provider_available(info.id), form))
    if bound is not None and not shown:  # a provider the page does not offer (the value is not repeated)
        messages.error(request, "Parley offers no such provider: pick one from the list.")
    context = {
        "guild": guild,
        "membership": membership,
        "section": "keys",
        "rows": rows,
        "required": registry.server_keys_required(),
        "can_store": encryption.configured(),
        "refused_keys": [key for key in stored.values() if key.refused_at],
    }
    return dashboard.render_page(request, "llm/keys.html", "keys", context, status=status)


def _keys_done(request: HtmxHttpRequest, guild: Guild, membership: Membership, text: str) -> HttpResponse:
    messages.success(request, text)
    if not request.htmx:
        return redirect("llm:keys", guild_id=guild.discord_id)
    return _render_keys(request, guild, membership)


@login_required
@sensitive_post_parameters("api_key")  # an error report never shows the key that was posted
@require_http_methods(["GET", "POST"])
def provider_keys(request: HtmxHttpRequest, guild_id: int) -> HttpResponse:
    """GET: the server's provider keys, masked (admins and owners); POST: an owner sets one."""
    guild, membership = dashboard.get_guild_for(request, guild_id, min_role=ADMIN)
    if request.method == "GET":
        return _render_keys(request, guild, membership)
    if not membership.can_manage_keys:
        raise PermissionDenied("Only this server's owners set its provider keys.")
    provider = request.POST.get("provider", "")
    form = ProviderKeyForm(request.POST, auto_id=f"key-{provider}-%s")
    if form.is_valid():
        with dashboard.errors_on(form):
            provider_key_set(
                guild=guild,
                provider=form.cleaned_data["provider"],
                api_key=form.cleaned_data["api_key"],
                **dashboard.who(request),
            )
    if form.errors:
        return _render_keys(request, guild, membership, bound=form, status=dashboard.INVALID)
    label = registry.provider_label(form.cleaned_data["provider"])
    return _keys_done(
        request, guild, membership, f"{label} key saved: this server's {label} calls use it now."
    )


@login_required
@require_POST
def provider_key_remove_view(request: HtmxHttpRequest, guild_id: int, provider: str) -> HttpResponse:
    guild, membership = dashboard.get_guild_for(request, guild_id, min_role=ADMIN)
    if not membership.can_manage_keys:
        raise PermissionDenied("Only this server's owners remove its provider keys.")
    if provider not in {p.id for p in registry.key_providers()}:
        raise Http404("No such provider")
    label = registry.provider_label(provider)
    asking = dashboard.confirmation(
        request,
        f"Remove this server's {label} key? Its {label} calls use Parley's own key again, if it has one.",
        {"guild": guild, "membership": membership, "cancel_url": reverse("llm:keys", args=[guild_id])},
    )
    if asking:
        return asking
    form = Form(data={})  # bound, so a service error can be added to it
    with dashboard.errors_on(form):
        provider_key_remove(guild=guild, provider=provider, **dashboard.who(request))
    if form.errors:
        messages.error(request, dashboard.error_text(form))
        if not request.htmx:
            return redirect("llm:keys", guild_id=guild_id)
        return _render_keys(request, guild, membership, status=dashboard.INVALID)
    return _keys_done(request, guild, membership, f"{label} key removed.")
