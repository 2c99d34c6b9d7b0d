"""Dashboard pages: the guild list and a guild's settings (with its per-channel overrides)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied
from django.db.models import Field
from django.forms import Form
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import trigger_client_event

from accounts import discord_oauth
from accounts.models import DISCORD_CDN, User
from audit.models import AuditLog
from guilds import dashboard, services
from guilds.dashboard import INVALID, HtmxHttpRequest
from guilds.effective import SettingsSnapshot
from guilds.forms import ChannelOverrideForm, RoleOverrideForm, SettingsForm
from guilds.models import Guild, GuildSettings, Membership
from guilds.services import EDITABLE_FIELDS
from llm import reasoning, registry
from llm.keys import own_providers
from llm.models import ProviderKey

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
    role_form: RoleOverrideForm | None = None,
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
    role_overrides = list(guild.role_settings.all())
    stored_keys = list(
        ProviderKey.objects.filter(guild=guild).only("provider", "refused_at", "refused_status")
    )
    own = {key.provider for key in stored_keys}  # providers the server has its own key for (llm/keys.py)
    if override_form is None:
        edit = next((o for o, _, _ in overrides if str(o.channel_id) == request.GET.get("channel")), None)
        initial: dict[str, Any] = {}
        if edit:
            initial = {
                "channel_id": edit.channel_id,
                "system_prompt": edit.system_prompt,
                "model": edit.model,
                "mode": edit.mode,
                "cooldown_seconds": edit.cooldown_seconds,
            }
        override_form = ChannelOverrideForm(
            initial=initial, channels=channels, current_model=initial.get("model", ""), own=own
        )
    if role_form is None:
        role_edit = next((r for r in role_overrides if str(r.role_id) == request.GET.get("role")), None)
        role_initial: dict[str, Any] = {}
        if role_edit:
            role_initial = {
                "role_id": role_edit.role_id,
                "system_prompt": role_edit.system_prompt,
                "model": role_edit.model,
            }
        role_form = RoleOverrideForm(
            initial=role_initial, current_model=role_initial.get("model", ""), own=own
        )
    form = form or SettingsForm(instance=guild.settings, channels=channels, own=own)
    context = {
        "guild": guild,
        "membership": membership,
        "form": form,
        "override_form": override_form,
        "overrides": overrides,
        "role_form": role_form,
        "role_overrides": role_overrides,
        "section": "settings",
        "invite_url": "" if guild.is_active else discord_oauth.invite_url(guild.discord_id),
        "refused_keys": [key for key in stored_keys if key.refused_at],  # llm/_refused_keys.html
        **extra,
    }
    if not membership.can_manage_settings:  # a readable summary instead of a form they cannot use
        context["summary"] = [
            (form.fields[name].label, _shown(name, getattr(guild.settings, name), names))
            for name in EDITABLE_FIELDS
        ]
    template = f"guilds/settings.html#{partial}" if partial and request.htmx else "guilds/settings.html"
    return render(request, template, context, status=status)


def _toast(response: HttpResponse, level: str, text: str) -> HttpResponse:
    """A notice parley.js shows in the page's toast region (``HX-Trigger``; htmx requests only)."""
    return trigger_client_event(response, "parley:toast", {"level": level, "text": text})


def _shown(name: str, value: Any, channel_names: dict[int, str]) -> str:
    """A setting's value as the page shows it."""
    if isinstance(value, bool):
        return "On" if value else "Off"
    if value is None:
        return "No limit"
    if name == "allowed_channel_ids":
        shown = [f"#{channel_names[i]}" if i in channel_names else f"unknown channel {i}" for i in value]
        return ", ".join(shown) or "Every channel"
    if name in ("target_user_ids", "blocked_user_ids"):
        return ", ".join(str(i) for i in value) or "Nobody"
    if name in ("model", "fallback_model"):
        return registry.display_name(value) if value else "No fallback"
    if name == "reasoning_display":
        return dict(reasoning.CHOICES).get(value, str(value))
    return str(value) if value != "" else "(empty)"


@dataclass(frozen=True)
class StaleEdit:
    """A save refused because someone saved since the form was opened: per setting, what is stored now (when
    someone changed it meanwhile) and what this editor changed, each shown, or None."""

    rows: list[tuple[str, str | None, str | None]]  # (label, saved meanwhile, yours)
    by: list[str]  # who saved meanwhile, for the heading


# Each of these writes bumps GuildSettings.version once and writes one audit row (guilds/services.py).
VERSION_BUMPS = (
    "settings.update",
    "settings.revert",
    "channel_override.set",
    "channel_override.remove",
    "role_override.set",
    "role_override.remove",
)
STALE_HISTORY = 100


def _rebase(guild: Guild, form: SettingsForm) -> tuple[SettingsForm, StaleEdit]:
    """The stale ``form`` redone on the stored settings: the editor's own edits kept, the settings only others
    changed at their new values, and the current version, so that saving it keeps both. The audit rows since the
    editor's version give what the settings were when the form was opened (each version bump wrote one)."""
    stored = GuildSettings.objects.get(guild=guild)
    gap = max(0, stored.version - form.cleaned_data["version"])
    # Past this many saves the history is not read: every setting that differs is then shown as changed by both,
    # so nothing someone else saved is overwritten without the editor seeing it.
    complete = gap <= STALE_HISTORY
    since = min(gap, STALE_HISTORY)
    entries = AuditLog.objects.filter(guild=guild, action__in=VERSION_BUMPS).select_related("actor")
    opened: dict[str, Any] = {}  # the value when the form was opened, of each setting changed since
    by: dict[str, None] = {}
    for entry in list(entries.order_by("-id")[:since])[::-1]:  # oldest first
        by[entry.actor.display_name if entry.actor else entry.actor_label] = None
        if entry.action in ("settings.update", "settings.revert"):
            for name, values in entry.changes.items():
                if name in EDITABLE_FIELDS and isinstance(values, list) and len(values) == 2:
                    opened.setdefault(name, _python(name, values[0]))
    mine, rows = {}, []
    channels = list(guild.channels.all())
    names = {c.discord_id: c.name for c in channels}
    for name in EDITABLE_FIELDS:
        now, yours = _python(name, getattr(stored, name)), _python(name, form.cleaned_data[name])
        if yours != opened.get(name, now):
            mine[name] = form.cleaned_data[name]
        theirs = (name in opened and opened[name] != now) or (not complete and name in mine)
        if theirs or name in mine:
            rows.append(
                (
                    str(form.fields[name].label),
                    _shown(name, now, names) if theirs else None,
                    _shown(name, yours, names) if name in mine else None,
                )
            )
    rebased = SettingsForm(instance=stored, channels=channels, initial=mine)
    return rebased, StaleEdit(rows=rows, by=list(by))


def _python(name: str, value: Any) -> Any:
    """A setting as stored (an audit row keeps decimals as text), lists in order, for comparisons."""
    field = GuildSettings._meta.get_field(name)
    assert isinstance(field, Field)
    value = field.to_python(value)
    return sorted(value) if isinstance(value, list) else value


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
    if form.has_error(NON_FIELD_ERRORS, code="stale"):
        form, stale = _rebase(guild, form)
        response = _render_settings(
            request, guild, membership, form=form, partial="settings-form", status=INVALID, stale=stale
        )
        return _toast(response, "warn", "Not saved: someone else changed these settings meanwhile.")
    if form.errors:
        response = _render_settings(
            request, guild, membership, form=form, partial="settings-form", status=INVALID
        )
        return _toast(response, "err", "Not saved: check the marked fields.")
    guild.settings.refresh_from_db()
    if not request.htmx:
        messages.success(request, "Settings saved.")
        return redirect("guilds:settings", guild_id=guild_id)
    response = _render_settings(request, guild, membership, partial="settings-form", saved=True)
    return _toast(response, "ok", "Settings saved.")


@login_required
@require_http_methods(["GET", "POST"])
def channel_override(request: HtmxHttpRequest, guild_id: int) -> HttpResponse:
    """GET: the override form for ``?channel=<id>``; POST: create or change that channel's override."""
    guild, membership = dashboard.get_guild_for(request, guild_id, min_role=ADMIN)
    if request.method == "GET":
        return _render_settings(request, guild, membership, partial="overrides")
    current = request.POST.get(f"{ChannelOverrideForm.prefix}-model", "")
    form = ChannelOverrideForm(
        request.POST, channels=guild.channels.all(), current_model=current, own=own_providers(guild.pk)
    )
    if form.is_valid():
        with dashboard.errors_on(form):
            services.channel_override_set(
                guild=guild,
                **dashboard.who(request),
                **form.cleaned_data,
            )
    return _override_saved(request, guild, membership, form, "overrides", "override", "Channel override")


@login_required
@require_POST
def channel_override_remove(request: HtmxHttpRequest, guild_id: int, channel_id: int) -> HttpResponse:
    guild, membership = dashboard.get_guild_for(request, guild_id, min_role=ADMIN)
    asking = dashboard.confirmation(
        request,
        f"Remove the override of channel {channel_id}? It will use the server's prompt and model again.",
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
    return _override_removed(request, guild, membership, form, "overrides", "Channel override removed.")


@login_required
@require_http_methods(["GET", "POST"])
def role_override(request: HtmxHttpRequest, guild_id: int) -> HttpResponse:
    """GET: the role override form for ``?role=<id>``; POST: create or change that role's override."""
    guild, membership = dashboard.get_guild_for(request, guild_id, min_role=ADMIN)
    if request.method == "GET":
        return _render_settings(request, guild, membership, partial="role-overrides")
    current = request.POST.get(f"{RoleOverrideForm.prefix}-model", "")
    form = RoleOverrideForm(request.POST, current_model=current, own=own_providers(guild.pk))
    if form.is_valid():
        with dashboard.errors_on(form):
            services.role_override_set(guild=guild, **dashboard.who(request), **form.cleaned_data)
    return _override_saved(request, guild, membership, form, "role-overrides", "role", "Role override")


@login_required
@require_POST
def role_override_remove(request: HtmxHttpRequest, guild_id: int, role_id: int) -> HttpResponse:
    guild, membership = dashboard.get_guild_for(request, guild_id, min_role=ADMIN)
    asking = dashboard.confirmation(
        request,
        f"Remove the override of role {role_id}? Its members get the channel's or the server's prompt and model.",
        {"guild": guild, "membership": membership, "cancel_url": reverse("guilds:settings", args=[guild_id])},
    )
    if asking:
        return asking
    form = Form(data={})  # bound, so a service error can be added to it
    with dashboard.errors_on(form):
        services.role_override_remove(guild=guild, role_id=role_id, **dashboard.who(request))
    return _override_removed(request, guild, membership, form, "role-overrides", "Role override removed.")


def _override_saved(
    request: HtmxHttpRequest,
    guild: Guild,
    membership: Membership,
    form: Form,
    partial: str,
    kind: str,
    what: str,
) -> HttpResponse:
    """After a channel (``kind`` "override") or role ("role") override's save: the form with its errors, or the
    section (HTMX) or the page with the result."""
    if form.errors:
        kwargs: dict[str, Any] = {f"{kind}_form": form}
        response = _render_settings(request, guild, membership, partial=partial, status=INVALID, **kwargs)
        return _toast(response, "err", f"{what} not saved: check the marked fields.")
    if not request.htmx:
        messages.success(request, f"{what} saved.")
        return redirect(reverse("guilds:settings", args=[guild.discord_id]) + f"#{partial}")
    saved: dict[str, Any] = {f"{kind}_saved": True}  # the section's "Saved" line
    response = _render_settings(request, guild, membership, partial=partial, **saved)
    return _toast(response, "ok", f"{what} saved.")


def _override_removed(
    request: HtmxHttpRequest, guild: Guild, membership: Membership, form: Form, partial: str, done: str
) -> HttpResponse:
    """After a channel or role override's removal: the result where the user looks (a flash and a toast)."""
    level, text = ("err", dashboard.error_text(form)) if form.errors else ("ok", done)
    messages.add_message(request, messages.ERROR if form.errors else messages.SUCCESS, text)
    if not request.htmx:
        return redirect(reverse("guilds:settings", args=[guild.discord_id]) + f"#{partial}")
    return _toast(_render_settings(request, guild, membership, partial=partial), level, text)
