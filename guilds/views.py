"""Dashboard pages: the guild list and a guild's settings (with its per-channel overrides)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.forms import Form
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import discord_oauth
from accounts.models import DISCORD_CDN, User
from guilds import dashboard, services
from guilds.dashboard import HtmxHttpRequest
from guilds.effective import SettingsSnapshot
from guilds.forms import ChannelOverrideForm, SettingsForm
from guilds.models import Guild, Membership

ADMIN = Membership.Role.ADMIN


def _oauth_guilds(user: User, member_of: set[int]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Guilds the user may add Parley to (bot absent), and those where the bot is but they have no role yet."""
    manageable = [g for g in discord_oauth.user_guilds(user.pk) if discord_oauth.can_manage(g)]
    ids = {int(g["id"]) for g in manageable}
    joined = set(
        Guild.objects.filter(discord_id__in=ids, is_active=True).values_list("discord_id", flat=True)
    )
    invites, no_role = [], []
    for g in manageable:
        icon = f"{DISCORD_CDN}/icons/{g['id']}/{g['icon']}.png?size=64" if g.get("icon") else ""
        row = {"id": g["id"], "name": g.get("name", ""), "icon_url": icon}
        if int(g["id"]) not in joined:
            invites.append({**row, "invite_url": discord_oauth.invite_url(g["id"])})
        elif int(g["id"]) not in member_of:
            no_role.append(row)
    return invites, no_role


@login_required
@require_GET
def guild_list(request: HtmxHttpRequest) -> HttpResponse:
    assert isinstance(request.user, User)
    memberships = list(Membership.objects.filter(user=request.user).select_related("guild"))
    member_of = {m.guild.discord_id for m in memberships}
    invites, no_role = _oauth_guilds(request.user, member_of) if request.user.discord_id else ([], [])
    others = []
    if request.user.is_staff:  # operators see every guild
        others = list(Guild.objects.exclude(discord_id__in=member_of).order_by("name")[:500])
    context = {"memberships": memberships, "invites": invites, "no_role": no_role, "others": others}
    return render(request, "guilds/guild_list.html", context)


def _render_settings(
    request: HtmxHttpRequest,
    guild: Guild,
    membership: Membership,
    *,
    form: SettingsForm | None = None,
    override_form: ChannelOverrideForm | None = None,
    partial: str = "",
    status: int = 200,
    **extra: Any,
) -> HttpResponse:
    channels = list(guild.channels.all())
    names = {c.discord_id: c.name for c in channels}
    snapshot = SettingsSnapshot.of(guild)
    overrides = [
        (o, names.get(channel_id), snapshot.effective(channel_id))
        for channel_id, o in snapshot.overrides.items()
    ]
    if override_form is None:
        edit = next((o for o, _, _ in overrides if str(o.channel_id) == request.GET.get("channel")), None)
        initial: dict[str, Any] = {}
        if edit:
            initial = {
                "channel_id": edit.channel_id,
                "system_prompt": edit.system_prompt,
                "model": edit.model,
            }
        override_form = ChannelOverrideForm(
            initial=initial, channels=channels, current_model=initial.get("model", "")
        )
    context = {
        "guild": guild,
        "membership": membership,
        "form": form or SettingsForm(instance=guild.settings, channels=channels),
        "override_form": override_form,
        "overrides": overrides,
        "section": "settings",
        **extra,
    }
    template = f"guilds/settings.html#{partial}" if partial and request.htmx else "guilds/settings.html"
    return render(request, template, context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def guild_settings(request: HtmxHttpRequest, guild_id: int) -> HttpResponse:
    guild, membership = dashboard.get_guild_for(request, guild_id)
    if request.method == "GET":
        return _render_settings(request, guild, membership)
    if not membership.can_manage_settings:
        raise PermissionDenied("Only owners and admins change settings.")
    form = SettingsForm(request.POST, instance=guild.settings, channels=guild.channels.all())
    if form.is_valid():
        with dashboard.errors_on(form):
            services.settings_update(
                guild=guild,
                changes=form.changes(),
                expected_version=form.cleaned_data["version"],
                **dashboard.who(request),
            )
    if form.errors:
        return _render_settings(
            request, guild, membership, form=form, partial="settings-form", status=dashboard.INVALID
        )
    guild.settings.refresh_from_db()
    if not request.htmx:
        messages.success(request, "Settings saved.")
        return redirect("guilds:settings", guild_id=guild_id)
    return _render_settings(request, guild, membership, partial="settings-form", saved=True)


@login_required
@require_http_methods(["GET", "POST"])
def channel_override(request: HtmxHttpRequest, guild_id: int) -> HttpResponse:
    """GET: the override form for ``?channel=<id>``; POST: create or change that channel's override."""
    guild, membership = dashboard.get_guild_for(request, guild_id, min_role=ADMIN)
    if request.method == "GET":
        return _render_settings(request, guild, membership, partial="overrides")
    current = request.POST.get(f"{ChannelOverrideForm.prefix}-model", "")
    form = ChannelOverrideForm(request.POST, channels=guild.channels.all(), current_model=current)
    if form.is_valid():
        with dashboard.errors_on(form):
            services.channel_override_set(
                guild=guild,
                **dashboard.who(request),
                **form.cleaned_data,
            )
    if form.errors:
        return _render_settings(
            request, guild, membership, override_form=form, partial="overrides", status=dashboard.INVALID
        )
    if not request.htmx:
        messages.success(request, "Channel override saved.")
        return redirect(reverse("guilds:settings", args=[guild_id]) + "#overrides")
    return _render_settings(request, guild, membership, partial="overrides", override_saved=True)


@login_required
@require_POST
def channel_override_remove(request: HtmxHttpRequest, guild_id: int, channel_id: int) -> HttpResponse:
    guild, membership = dashboard.get_guild_for(request, guild_id, min_role=ADMIN)
    asking = dashboard.confirmation(
        request,
        f"Remove the override of channel {channel_id}? It will use the guild's prompt and model again.",
        {"guild": guild, "membership": membership, "cancel_url": reverse("guilds:settings", args=[guild_id])},
    )
    if asking:
        return asking
    form = Form(data={})  # bound, so a service error can be added to it
    with dashboard.errors_on(form):
        services.channel_override_remove(
            guild=guild,
            channel_id=channel_id,
            **dashboard.who(request),
        )
    if form.errors:
        messages.error(request, dashboard.error_text(form))
    else:
        messages.success(request, "Channel override removed.")
    if not request.htmx:
        return redirect(reverse("guilds:settings", args=[guild_id]) + "#overrides")
    return _render_settings(request, guild, membership, partial="overrides")
