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

from guilds import dashboard
from guilds.effective import SettingsSnapshot
from guilds.forms import THREAD_KINDS
from guilds.models import Channel, Guild


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
    # The same merge as the bot's (guilds/effective.py): override, else the guild's row, else the default model.
    snapshot = SettingsSnapshot.of(guild)  # guild.settings came with get_guild_for; this reads the overrides
    channels = guild.channels.all()
    if query:
        channels = channels.filter(name__icontains=query)
    rows = []
    for channel in channels:
        parent = channel.parent_discord_id
        is_thread = channel.kind in THREAD_KINDS and parent is not None
        # The bot does the same (botcore.conversation.channel_key): a thread counts as its parent channel.
        key = parent if is_thread and parent is not None else channel.discord_id
        effective = snapshot.effective(key)
        source = ("parent" if is_thread else "channel") if key in snapshot.overrides else "guild"
        rows.append(
            ChannelRow(
                channel=channel,
                is_thread=is_thread,
                answers=snapshot.enabled and snapshot.allows_channel(key),
                model=effective.model,
                prompt=effective.system_prompt,
                source=source,
            )
        )
    return rows


@login_required
@require_GET
def channels_page(request: dashboard.HtmxHttpRequest, guild_id: int) -> HttpResponse:
    guild, membership = dashboard.get_guild_for(request, guild_id)  # any member may look
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
