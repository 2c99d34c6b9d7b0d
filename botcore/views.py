from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.models import User
from botcore.decisions import KEEP
from botcore.models import TriggerDecision
from botcore.monitor import shard_overview
from guilds import dashboard
from guilds.dashboard import HtmxHttpRequest, json_api
from guilds.models import Channel, Guild, Membership, parse_discord_id

GUILDS_PER_PAGE = 50
DECISIONS_PER_PAGE = 50


def staff_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_staff:
            raise PermissionDenied("Operators only.")
        return view(request, *args, **kwargs)

    return login_required(wrapper)


@require_GET
@json_api
def shards_api(request: HttpRequest) -> JsonResponse:
    """Staff only: every shard with its state and the guilds on it."""
    if not request.user.is_staff:
        raise PermissionDenied("Operators only.")
    guilds: dict[int, list[dict[str, object]]] = {}
    for discord_id, name, shard_id in Guild.objects.filter(is_active=True).values_list(
        "discord_id", "name", "shard_id"
    ):
        guilds.setdefault(shard_id, []).append({"id": str(discord_id), "name": name})
    shards = [
        {
            **{
                key: value
                for key, value in shard.items()
                if key not in {"sparkline", "updated_at", "last_heartbeat"}
            },
            "last_heartbeat": shard["last_heartbeat"].isoformat() if shard["last_heartbeat"] else None,  # type: ignore[attr-defined]
            "guild_list": guilds.get(shard["shard_id"], []),  # type: ignore[call-overload]
        }
        for shard in shard_overview()
    ]
    return JsonResponse({"shards": shards})


@require_GET
@staff_required
def status_page(request: HttpRequest) -> HttpResponse:
    # PostgreSQL refuses NUL in a text parameter, and a guild name never contains one.
    query = request.GET.get("q", "").replace("\x00", "").strip()[:100]
    guilds = Guild.objects.filter(is_active=True).only("discord_id", "name", "shard_id", "member_count")
    if discord_id := parse_discord_id(query):
        guilds = guilds.filter(discord_id=discord_id)
    elif query:
        guilds = guilds.filter(name__icontains=query)
    page = Paginator(guilds.order_by("shard_id", "name"), GUILDS_PER_PAGE).get_page(request.GET.get("page"))
    context = {"shards": shard_overview(), "page": page, "query": query}
    if request.htmx:  # type: ignore[attr-defined]
        target = request.htmx.target  # type: ignore[attr-defined]
        return render(
            request, f"botcore/status.html#{'guilds' if target == 'guild-list' else 'shards'}", context
        )
    return render(request, "botcore/status.html", context)


def _inspector_filters(query: dict[str, str]) -> tuple[dict[str, str], int | None]:
    """The answer inspector's filters and keyset cursor; a value that names nothing is dropped, as if absent."""
    filters = {}
    if (reason := query.get("reason", "").strip()) in TriggerDecision.Reason.values:
        filters["reason"] = reason
    for name in ("channel", "author"):
        if value := parse_discord_id(query.get(name, "").strip()):
            filters[name] = str(value)
    return filters, parse_discord_id(query.get("before", "").strip())


@login_required
@require_GET
def answer_inspector(request: HtmxHttpRequest, guild_id: int) -> HttpResponse:
    """The server's last trigger decisions (``botcore/decisions.py``), newest first, filtered, keyset-paginated:
    four queries whatever the page holds (membership, rows, channel names, authors with an account)."""
    guild, membership = dashboard.get_guild_for(request, guild_id, min_role=Membership.Role.ADMIN)
    filters, before = _inspector_filters(request.GET.dict())
    rows = TriggerDecision.objects.filter(guild=guild).order_by("-id")
    if "reason" in filters:
        rows = rows.filter(reason=filters["reason"])
    if "channel" in filters:
        rows = rows.filter(channel_id=int(filters["channel"]))
    if "author" in filters:
        rows = rows.filter(author_id=int(filters["author"]))
    if before is not None:
        rows = rows.filter(id__lt=before)
    page = list(rows[: DECISIONS_PER_PAGE + 1])
    shown = page[:DECISIONS_PER_PAGE]
    for decision in shown:
        decision.guild = guild  # for the jump link, without a query a row
    channels = dict(Channel.objects.filter(guild=guild).values_list("discord_id", "name"))
    authors = {d.author_id for d in shown}
    users = {u.discord_id: u for u in User.objects.filter(discord_id__in=authors)} if authors else {}
    context = {
        "guild": guild,
        "membership": membership,
        "section": "inspector",
        "rows": [(d, channels.get(d.channel_id), users.get(d.author_id)) for d in shown],
        "older": "?" + urlencode({**filters, "before": shown[-1].pk}) if len(page) > len(shown) else "",
        "newest": "?" + urlencode(filters) if before is not None else "",
        "filters": filters,
        "reasons": TriggerDecision.Reason.choices,
        "channels": sorted(channels.items(), key=lambda item: item[1]),
        "keep": KEEP,
    }
    return dashboard.render_page(request, "botcore/inspector.html", "decisions", context)
