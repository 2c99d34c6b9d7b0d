from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from botcore.monitor import shard_overview
from guilds.dashboard import json_api
from guilds.models import Guild, parse_discord_id

GUILDS_PER_PAGE = 50


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
