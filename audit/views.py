"""A guild's audit log page: newest first, filtered, keyset-paginated, with one-click revert of settings."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.forms import Form
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from audit.models import AuditLog
from guilds import dashboard, services
from guilds.dashboard import HtmxHttpRequest
from guilds.models import Guild, Membership

PAGE_SIZE = 50
ACTIONS = [
    "settings.update",
    "settings.revert",
    "channel_override.set",
    "channel_override.remove",
    "member.add",
    "member.role_change",
    "member.remove",
]
ACTOR_KINDS = [AuditLog.ActorKind.SYSTEM, AuditLog.ActorKind.BOT]


def _entries(guild: Guild, filters: dict[str, str], before: str) -> QuerySet[AuditLog]:
    entries = AuditLog.objects.filter(guild=guild).select_related("actor").order_by("-id")
    if "action" in filters:
        entries = entries.filter(action=filters["action"])
    actor = filters.get("actor", "")
    if actor.isdigit():
        entries = entries.filter(actor_id=int(actor))
    elif actor:
        entries = entries.filter(actor__isnull=True, actor_label=actor)
    if (
        before.isdigit()
    ):  # keyset pagination: an index range scan on (guild, -id), as fast on page 1000 as on 1
        entries = entries.filter(id__lt=int(before))
    return entries


def _diff(changes: Any) -> list[tuple[str, Any, Any]]:
    """``{field: [before, after]}`` as rows; any other shape is shown as an "after" value."""
    if not isinstance(changes, dict):
        return [("", None, changes)] if changes else []
    return [
        (field, *value) if isinstance(value, list) and len(value) == 2 else (field, None, value)
        for field, value in changes.items()
    ]


@login_required
@require_GET
def audit_log(request: HtmxHttpRequest, guild_id: int) -> HttpResponse:
    guild, membership = dashboard.get_guild_for(request, guild_id, min_role=Membership.Role.ADMIN)
    filters = {k: v for k in ("action", "actor") if (v := request.GET.get(k, "").strip())}
    before = request.GET.get("before", "")
    page = list(_entries(guild, filters, before)[: PAGE_SIZE + 1])
    context = {
        "guild": guild,
        "membership": membership,
        "section": "audit",
        "rows": [(entry, _diff(entry.changes)) for entry in page[:PAGE_SIZE]],
        "older": "?" + urlencode({**filters, "before": page[PAGE_SIZE - 1].pk})
        if len(page) > PAGE_SIZE
        else "",
        "newest": "?" + urlencode(filters) if before else "",
        "filters": filters,
        "actions": ACTIONS,
        "actor_kinds": ACTOR_KINDS,
        "members": guild.memberships.select_related("user").order_by("user__username"),
    }
    template = "audit/audit_log.html#entries" if request.htmx else "audit/audit_log.html"
    return render(request, template, context)


@login_required
@require_POST
def audit_revert(request: HtmxHttpRequest, guild_id: int, entry_id: int) -> HttpResponse:
    guild, membership = dashboard.get_guild_for(request, guild_id, min_role=Membership.Role.ADMIN)
    entry = get_object_or_404(AuditLog.objects.select_related("guild"), pk=entry_id, guild=guild)
    log_url = reverse("audit:log", args=[guild_id])
    question = f"Revert the settings change of {entry.created_at:%Y-%m-%d %H:%M} (entry #{entry.pk})?"
    asking = dashboard.confirmation(
        request, question, {"guild": guild, "membership": membership, "cancel_url": log_url}
    )
    if asking:
        return asking
    form = Form(data={})  # bound, so a service error can be added to it
    with dashboard.errors_on(form):
        services.settings_revert(
            entry=entry, actor=dashboard.user_of(request), ip=dashboard.request_ip(request)
        )
    if form.errors:
        messages.error(request, dashboard.error_text(form))
    else:
        messages.success(request, "Change reverted: the settings are back to their values before it.")
    return HttpResponseClientRedirect(log_url) if request.htmx else redirect(log_url)
