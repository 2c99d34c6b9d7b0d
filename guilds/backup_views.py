"""Dashboard pages: a server's configuration exported as a file, and a file imported after a preview, by owners and
admins (those who change settings). The format and the import's rules: ``guilds/backup.py``.

The preview carries the parsed file in a signed hidden field (for this server and this user, an hour at most) with
the settings version it showed, so it needs no JavaScript and no server-side state; the confirmation runs the
services' checks again, and shows a fresh preview if anything was saved in between."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.core.exceptions import ValidationError
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods

from guilds import backup, dashboard, services
from guilds.dashboard import INVALID, HtmxHttpRequest
from guilds.forms import ConfigUploadForm, field_label
from guilds.models import ChannelSettings, Guild, Membership
from llm import reasoning, registry

ADMIN = Membership.Role.ADMIN
PREVIEW_MAX_AGE = 3600  # seconds a preview can be confirmed


@login_required
@require_GET
def backup_export(request: HtmxHttpRequest, guild_id: int) -> HttpResponse:
    guild, _ = dashboard.get_guild_for(request, guild_id, min_role=ADMIN)
    response = JsonResponse(
        backup.config_export(guild), json_dumps_params={"indent": 2, "ensure_ascii": False}
    )
    name = f"parley-{slugify(guild.name) or 'server'}-{timezone.now():%Y-%m-%d}.json"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@login_required
@require_http_methods(["GET", "POST"])
def backup_page(request: HtmxHttpRequest, guild_id: int) -> HttpResponse:
    """GET: export and upload; POST a file: the preview; POST ``confirmed=yes`` with the preview's payload: the
    import."""
    guild, membership = dashboard.get_guild_for(request, guild_id, min_role=ADMIN)
    if request.method == "GET":
        return _page(request, guild, membership, ConfigUploadForm())
    if request.POST.get("confirmed") == "yes":
        return _confirm(request, guild, membership)
    form = ConfigUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _page(request, guild, membership, form, status=INVALID)
    try:
        config = backup.config_parse(form.cleaned_data["file"].read(backup.MAX_BYTES + 1))
        plan = backup.config_preview(guild=guild, config=config)
    except ValidationError as exc:
        return _page(request, guild, membership, form, errors=_errors(exc), status=INVALID)
    return _preview(request, guild, membership, config, plan)


def _confirm(request: HtmxHttpRequest, guild: Guild, membership: Membership) -> HttpResponse:
    try:
        signed = signing.loads(
            request.POST.get("payload", ""), salt=_salt(request, guild), max_age=PREVIEW_MAX_AGE
        )
    except signing.BadSignature:  # changed, for another server or user, or expired
        messages.error(request, "This preview has expired or is not valid here: upload the file again.")
        return redirect("guilds:backup", guild_id=guild.discord_id)
    config = signed["config"]
    try:
        try:
            plan = backup.config_import(
                guild=guild, config=config, expected_version=signed["version"], **dashboard.who(request)
            )
        except services.StaleSettingsError:
            stale = "The configuration changed since this preview: check the changes again."
            fresh = backup.config_preview(guild=guild, config=config)
            return _preview(request, guild, membership, config, fresh, stale)
    except ValidationError as exc:  # valid at the preview, not any more (a model no longer offered, say)
        return _page(request, guild, membership, ConfigUploadForm(), errors=_errors(exc), status=INVALID)
    if plan.count:
        messages.success(
            request, f"Imported from {plan.source}: {_summary(plan)}. The audit log lists each change."
        )
    else:
        messages.info(request, "Nothing to import: this server already has this configuration.")
    return redirect("guilds:backup", guild_id=guild.discord_id)


def _salt(request: HtmxHttpRequest, guild: Guild) -> str:
    return f"guilds.backup:{guild.pk}:{dashboard.user_of(request).pk}"


def _errors(exc: ValidationError) -> list[str]:
    """Each error with its place in the file (``settings.temperature``), or alone when it is about the file."""
    if not hasattr(exc, "error_dict"):
        return exc.messages
    return [
        message if where in ("file", "format", "version") else f"{where}: {message}"
        for where, found in exc.message_dict.items()
        for message in found
    ]


def _summary(plan: backup.Plan) -> str:
    counts = [
        (len(plan.settings), "setting"),
        (len(plan.channels), "channel override"),
        (len(plan.roles), "role override"),
    ]
    return ", ".join(f"{n} {noun}{'s' if n != 1 else ''}" for n, noun in counts if n) + " changed"


def _page(
    request: HtmxHttpRequest,
    guild: Guild,
    membership: Membership,
    form: ConfigUploadForm,
    *,
    errors: list[str] | None = None,
    status: int = 200,
) -> HttpResponse:
    context = {"guild": guild, "membership": membership, "section": "backup", "form": form, "errors": errors}
    return render(request, "guilds/backup.html", context, status=status)


@dataclass(frozen=True)
class Row:
    """A changed field as ``templates/audit/_change.html`` shows it."""

    label: str
    before: str | None
    after: str | None
    words: None = None


def _shown(name: str, value: Any, channels: dict[int, str]) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "On" if value else "Off"
    if name == "allowed_channel_ids":
        return ", ".join(f"#{channels[i]}" if i in channels else str(i) for i in value) or "Every channel"
    if name in ("target_user_ids", "blocked_user_ids"):
        return ", ".join(str(i) for i in value) or "Nobody"
    if name in ("model", "fallback_model") and value:
        return registry.display_name(value)
    if name == "mode":
        return str(dict(ChannelSettings.Mode.choices).get(value, value))
    if name == "reasoning_display":
        return str(dict(reasoning.CHOICES).get(value, value))
    return str(value)


def _rows(changes: dict[str, list[Any]], channels: dict[int, str]) -> list[Row]:
    return [
        Row(field_label(name), _shown(name, before, channels), _shown(name, after, channels))
        for name, (before, after) in changes.items()
    ]


def _preview(
    request: HtmxHttpRequest,
    guild: Guild,
    membership: Membership,
    config: dict[str, Any],
    plan: backup.Plan,
    stale: str = "",
) -> HttpResponse:
    channels = dict(guild.channels.values_list("discord_id", "name"))
    payload = signing.dumps(
        {"config": config, "version": plan.version}, salt=_salt(request, guild), compress=True
    )
    context = {
        "guild": guild,
        "membership": membership,
        "section": "backup",
        "plan": plan,
        "payload": payload,
        "stale": stale,
        "settings_rows": _rows(plan.settings, channels),
        "channel_rows": [
            (
                f"#{channels[c.ident]}" if c.ident in channels else f"channel {c.ident}",
                c.action,
                _rows(c.changes, channels),
            )
            for c in plan.channels
        ],
        "role_rows": [(f"role {c.ident}", c.action, _rows(c.changes, channels)) for c in plan.roles],
    }
    return render(request, "guilds/backup_preview.html", context, status=INVALID if stale else 200)
