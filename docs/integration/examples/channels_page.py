"""Example dashboard page (docs/integration/adding-a-dashboard-page.md): what Parley does in each channel.

``GET /dashboard/guilds/<guild_id>/channels/`` lists the guild's synced channels and threads: whether Parley
answers there, and with which model and prompt (a channel override, its parent's for a thread, or the guild's).
``?q=`` filters by name; with htmx, only the table is rendered (``examples/channels.html#channel-table``).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from guilds.access import HtmxHttpRequest, get_guild_for
from guilds.forms import THREAD_KINDS
from guilds.models import Channel, ChannelSettings, Guild


@dataclass(frozen=True)
class ChannelRow:
    channel: Channel
    is_thread: bool
    answers: bool
    model: str
    prompt: str
    source: str  # where model and prompt come from: "channel", "parent" or "guild"


def channel_rows(guild: Guild, query: str = "") -> list[ChannelRow]:
    """Two queries whatever the number of channels: the channels, and the guild's overrides."""
    settings = guild.settings  # loaded with the guild by get_guild_for
    channels = guild.channels.all()
    if query:
        channels = channels.filter(name__icontains=query)
    overrides = {o.channel_id: o for o in ChannelSettings.objects.filter(guild=guild)}
    rows = []
    for channel in channels:
        parent = channel.parent_discord_id
        is_thread = channel.kind in THREAD_KINDS and parent is not None
        # The bot does the same (botcore.conversation.channel_key): a thread counts as its parent channel.
        key = parent if is_thread and parent is not None else channel.discord_id
        override = overrides.get(key)
        source = ("parent" if is_thread else "channel") if override else "guild"
        rows.append(
            ChannelRow(
                channel=channel,
                is_thread=is_thread,
                answers=settings.enabled and settings.allows_channel(key),
                model=(override.model if override and override.model else settings.model),
                prompt=(
                    override.system_prompt if override and override.system_prompt else settings.system_prompt
                ),
                source=source,
            )
        )
    return rows


@login_required
@require_GET
def channels_page(request: HtmxHttpRequest, guild_id: int) -> HttpResponse:
    guild, membership = get_guild_for(request, guild_id)  # any member may look
    query = request.GET.get("q", "").strip()[:100]
    context = {
        "guild": guild,
        "membership": membership,
        "section": "channels",  # the sidebar highlights the link whose section matches
        "query": query,
        "rows": channel_rows(guild, query),
    }
    template = "examples/channels.html#channel-table" if request.htmx else "examples/channels.html"
    return render(request, template, context)
