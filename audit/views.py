"""A guild's audit log page: newest first, filtered, keyset-paginated, in Discord's words (#channels, members,
model names, field labels) with a word diff of long text; its export as CSV or JSON; a settings change can be
reverted after a preview of what the revert changes."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpResponse, HttpResponseBadRequest
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect, retarget

from accounts.models import User
from audit import export
from audit.forms import RevertForm
from audit.models import AuditLog
from guilds import dashboard, services
from guilds.dashboard import HtmxHttpRequest
from guilds.forms import field_label
from guilds.models import Channel, ChannelSettings, Guild, Membership
from llm import registry

PAGE_SIZE = 50
# The actions the filter offers, in the words the page shows them (the stored names are for code and exports).
ACTIONS = {
    "settings.update": "Settings changed",
    "settings.revert": "Settings reverted",
    "channel_override.set": "Channel override set",
    "channel_override.remove": "Channel override removed",
    "role_override.set": "Role override set",
    "role_override.remove": "Role override removed",
    "config.import": "Configuration imported",
    "provider_key.set": "Provider key set",
    "provider_key.remove": "Provider key removed",
    "provider_key.refused": "Provider key refused",
    "member.add": "Member added",
    "member.role_change": "Role changed",
    "member.remove": "Member removed",
    "guild.join": "Parley joined",
    "guild.leave": "Parley left",
}
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


WORD_DIFF_MIN = 60  # characters: shorter values read well enough side by side
WORDS_RE = re.compile(r"^\s+|\S+\s*")  # a word with the space after it (and any space before the first)
CHANNEL_FIELDS = {"allowed_channel_ids"}
USER_FIELDS = {"target_user_ids", "blocked_user_ids"}
MODEL_FIELDS = {"model", "fallback_model"}


def word_diff(before: str, after: str) -> list[tuple[str, str]]:
    """``after`` against ``before`` word by word: ``[("", same), ("del", removed), ("ins", added), ...]``."""
    old, new = WORDS_RE.findall(before), WORDS_RE.findall(after)
    # Compared without the space after each word, so that a word at the end of a line still matches.
    matcher = difflib.SequenceMatcher(
        None, [w.strip() for w in old], [w.strip() for w in new], autojunk=False
    )
    parts: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            parts.append(("", "".join(new[j1:j2])))
            continue
        if i2 > i1:
            parts.append(("del", "".join(old[i1:i2])))
        if j2 > j1:
            parts.append(("ins", "".join(new[j1:j2])))
    return parts


@dataclass(frozen=True)
class Change:
    """One field of an entry as the page shows it: values in Discord's words, None for "not set"."""

    field: str
    label: str
    before: str | None
    after: str | None
    words: list[tuple[str, str]] | None  # a word diff, for long text


@dataclass(frozen=True)
class Target:
    text: str
    user: User | None = None


def _pairs(changes: Any) -> list[tuple[str, Any, Any]]:
    """``{field: [before, after]}`` as rows; any other shape is shown as an "after" value."""
    if not isinstance(changes, dict):
        return [("", None, changes)] if changes else []
    return [
        (field, *value) if isinstance(value, list) and len(value) == 2 else (field, None, value)
        for field, value in changes.items()
    ]


def _ids(value: Any) -> list[int]:
    return [item for item in value if isinstance(item, int)] if isinstance(value, list) else []


class Words:
    """Discord's names for the ids an entry stores, looked up once for a page of entries: at most two queries
    (the guild's channels, the users named), none when no entry names a channel or a user."""

    def __init__(self, guild: Guild, targets: Iterable[str], rows: Iterable[tuple[str, Any, Any]]) -> None:
        channels: set[int] = set()
        users: set[int] = set()
        for target in targets:
            kind, _, ident = target.partition(":")
            if ident.isdigit():
                (channels if kind == "channel" else users if kind == "user" else set()).add(int(ident))
        for field, before, after in rows:
            ids = _ids(before) + _ids(after)
            channels.update(ids if field in CHANNEL_FIELDS else ())
            users.update(ids if field in USER_FIELDS else ())
        self.channels = (
            dict(Channel.objects.filter(guild=guild).values_list("discord_id", "name")) if channels else {}
        )
        self.users = {u.discord_id: u for u in User.objects.filter(discord_id__in=users)} if users else {}

    def channel(self, channel_id: int) -> str:
        name = self.channels.get(channel_id)
        return f"#{name}" if name else f"unknown channel {channel_id}"

    def user(self, discord_id: int) -> str:
        user = self.users.get(discord_id)
        return user.display_name if user else f"unknown user ({discord_id})"

    def value(self, field: str, value: Any) -> str | None:
        if value is None or value == "":
            return value
        if field in CHANNEL_FIELDS and isinstance(value, list):
            return ", ".join(self.channel(i) for i in _ids(value)) if value else "All channels"
        if field in USER_FIELDS and isinstance(value, list):
            return ", ".join(self.user(i) for i in _ids(value)) if value else "Nobody"
        if field in MODEL_FIELDS and isinstance(value, str):
            return registry.display_name(value)
        if field == "role" and value in Membership.Role.values:
            return str(Membership.Role(value).label)
        if field == "mode" and value in ChannelSettings.Mode.values:
            return str(ChannelSettings.Mode(value).label)
        if isinstance(value, bool):
            return "On" if value else "Off"
        if isinstance(value, list):
            return ", ".join(str(item) for item in value) or "None"
        return str(value)

    def change(self, field: str, before: Any, after: Any) -> Change:
        shown = self.value(field, before), self.value(field, after)
        long = (
            all(isinstance(v, str) for v in (before, after)) and max(len(before), len(after)) >= WORD_DIFF_MIN
        )
        words = word_diff(before, after) if long else None
        return Change(field, field_label(field) if field else "", *shown, words)

    @classmethod
    def of(cls, guild: Guild, entries: list[AuditLog]) -> Words:
        return cls(guild, [e.target for e in entries], [row for e in entries for row in _pairs(e.changes)])

    def target(self, target: str) -> Target:
        kind, _, ident = target.partition(":")
        if not ident.isdigit():
            return Target(target)
        if kind == "channel":
            return Target(self.channel(int(ident)))
        if kind == "user":
            return Target(self.user(int(ident)), self.users.get(int(ident)))
        if kind == "entry":
            return Target(f"entry #{ident}")
        if kind == "role":
            return Target(f"role {ident}")
        return Target(target)


def entry_rows(words: Words, entries: list[AuditLog]) -> list[tuple[AuditLog, str, Target, list[Change]]]:
    """What the page shows of each entry: the entry, its action in words, its target and its changes (the live
    tail renders new ones the same way)."""
    return [
        (
            e,
            ACTIONS.get(e.action, e.action),
            words.target(e.target),
            [words.change(*row) for row in _pairs(e.changes)],
        )
        for e in entries
    ]


@login_required
@require_GET
def audit_log(request: HtmxHttpRequest, guild_id: int) -> HttpResponse:
    guild, membership = dashboard.get_guild_for(request, guild_id, min_role=Membership.Role.ADMIN)
    filters, before = _filters(request.GET.dict())
    page = list(_entries(guild, filters, before)[: PAGE_SIZE + 1])
    words = Words.of(guild, page[:PAGE_SIZE])
    context = {
        "guild": guild,
        "membership": membership,
        "section": "audit",
        "rows": entry_rows(words, page[:PAGE_SIZE]),
        "older": "?" + urlencode({**filters, "before": page[PAGE_SIZE - 1].pk})
        if len(page) > PAGE_SIZE
        else "",
        "newest": "?" + urlencode(filters) if before is not None else "",
        "filters": filters,
        "export_query": urlencode(filters),
        "actions": ACTIONS,
        "actor_kinds": ACTOR_KINDS,
        "members": guild.memberships.select_related("user").order_by("user__username"),
    }
    # The live tail (audit/consumers.py) is for the newest entries, unfiltered: older pages stay as they are.
    if not filters and before is None:
        context["live_after"] = page[0].pk if page else 0
    return dashboard.render_page(request, "audit/audit_log.html", "entries", context)


@login_required
@require_GET
def audit_export(request: HtmxHttpRequest, guild_id: int) -> HttpResponseBase:
    """The log with the page's filters (not its cursor: every matching entry), as ``?format=csv`` or ``json``."""
    guild, _ = dashboard.get_guild_for(request, guild_id, min_role=Membership.Role.ADMIN)
    filters, _before = _filters(request.GET.dict())
    kind = request.GET.get("format", "csv")
    if kind not in export.FORMATS:
        return HttpResponseBadRequest("Unknown format: ask for format=csv or format=json.")
    return export.response(_entries(guild, filters, None), kind=kind, name=f"parley-audit-{guild.discord_id}")


def _preview_words(guild: Guild, preview: services.RevertPreview) -> dict[str, Any]:
    """The revert preview's rows in Discord's words, each with whether it changed again since the entry."""
    words = Words(guild, [], preview.rows)
    return {
        "changes": [(words.change(*row), row[0] in preview.changed_since) for row in preview.rows],
        "changed_since": [field_label(name) for name in preview.changed_since],
    }


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
    context |= {"preview": preview, "error": error, **_preview_words(guild, preview)}
    response = render(request, "audit/revert.html", context, status=dashboard.INVALID if error else 200)
    return retarget(response, "body") if request.htmx else response  # the preview is a page, not a fragment
