"""A guild's audit log page: newest first, filtered, keyset-paginated; a settings change can be reverted after a
preview of what the revert changes."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect, retarget

from audit.forms import RevertForm
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


ROW_ID_RE = re.compile(r"[0-9]{1,19}")
ACTION_RE = re.compile(r"[a-z_.]{1,50}")  # what audit.record's callers name actions (the column holds 50)


def _row_id(text: str) -> int | None:
    """``text`` as a row id (1 to 2**63 - 1), or None. Only ASCII digits: ``str.isdigit()`` also accepts "²",
    which ``int()`` refuses, and a longer number overflows a bigint lookup."""
    value = int(text) if ROW_ID_RE.fullmatch(text) else 0
    return value if 0 < value < 2**63 else None


def _filters(query: dict[str, str]) -> tuple[dict[str, str], int | None]:
    """The filters and the keyset cursor from the query string. A value that names nothing (an unknown actor
    kind, a malformed id) is dropped, as if absent: the page shows everything, never an error."""
    filters = {k: v for k in ("action", "actor") if (v := query.get(k, "").strip())}
    if "action" in filters and not ACTION_RE.fullmatch(filters["action"]):
        del filters["action"]  # no entry has it (and PostgreSQL refuses a NUL byte in a query outright)
    actor = filters.get("actor", "")
    if actor and _row_id(actor) is None and actor not in AuditLog.ActorKind.values:
        del filters["actor"]
    return filters, _row_id(query.get("before", "").strip())


def _entries(guild: Guild, filters: dict[str, str], before: int | None) -> QuerySet[AuditLog]:
    entries = AuditLog.objects.filter(guild=guild).select_related("actor").order_by("-id")
    if "action" in filters:
        entries = entries.filter(action=filters["action"])
    if "actor" in filters:
        actor_id = _row_id(filters["actor"])
        if actor_id is not None:
            entries = entries.filter(actor_id=actor_id)
        else:
            entries = entries.filter(actor__isnull=True, actor_label=filters["actor"])
    # Keyset pagination: an index range scan on (guild, -id), as fast on page 1000 as on page 1.
    if before is not None:
        entries = entries.filter(id__lt=before)
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
    filters, before = _filters(request.GET.dict())
    page = list(_entries(guild, filters, before)[: PAGE_SIZE + 1])
    context = {
        "guild": guild,
        "membership": membership,
        "section": "audit",
        "rows": [(entry, _diff(entry.changes)) for entry in page[:PAGE_SIZE]],
        "older": "?" + urlencode({**filters, "before": page[PAGE_SIZE - 1].pk})
        if len(page) > PAGE_SIZE
        else "",
        "newest": "?" + urlencode(filters) if before is not None else "",
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
    """The log's Revert button posts here and gets a preview: each field it changes, now -> after the revert. The
    preview posts again with ``confirmed=yes`` and the settings version it showed, which applies the revert
    (``guilds.services.settings_revert``: refused if a field changed since, or stale if anything was saved since).
    Nothing is applied unseen, with htmx or without."""
    guild, membership = dashboard.get_guild_for(request, guild_id, min_role=Membership.Role.ADMIN)
    entry = get_object_or_404(AuditLog.objects.select_related("guild", "actor"), pk=entry_id, guild=guild)
    log_url = reverse("audit:log", args=[guild_id])
    form = RevertForm(request.POST) if request.POST.get("confirmed") == "yes" else None
    if form is not None and form.is_valid():
        with dashboard.errors_on(form):
            services.settings_revert(
                entry=entry,
                expected_version=form.cleaned_data["version"],
                **dashboard.who(request),
            )
        if not form.errors:
            messages.success(request, "Change reverted: the settings are back to their values before it.")
            return HttpResponseClientRedirect(log_url) if request.htmx else redirect(log_url)
    try:
        preview = services.settings_revert_preview(entry=entry)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return HttpResponseClientRedirect(log_url) if request.htmx else redirect(log_url)
    error = dashboard.error_text(form) if form is not None else ""
    context = {"guild": guild, "membership": membership, "section": "audit", "entry": entry}
    context |= {"preview": preview, "error": error}
    response = render(request, "audit/revert.html", context, status=dashboard.INVALID if error else 200)
    return retarget(response, "body") if request.htmx else response  # the preview is a page, not a fragment
