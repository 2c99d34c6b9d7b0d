"""Example JSON endpoint (docs/integration/adding-a-json-endpoint.md): a guild's system prompt.

    GET  /api/v1/guilds/<guild_id>/prompt    any member     {"guild_id": "...", "system_prompt": "...", "version": 3}
    POST /api/v1/guilds/<guild_id>/prompt    owner, admin   body {"system_prompt": "...", "version": 3}

Errors are JSON too: 401 not logged in, 404 not a member (a guild's existence is never revealed), 403 role too
low (those three come from ``dashboard.json_api``), 400 a body that is not a JSON object, 422 invalid values, 409
someone saved since ``version``.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from guilds import dashboard, services
from guilds.dashboard import json_error
from guilds.models import Guild, GuildSettings, Membership


def prompt_body(guild: Guild, row: GuildSettings) -> dict[str, Any]:
    # Discord ids are strings: they exceed JavaScript's safe integers.
    return {"guild_id": str(guild.discord_id), "system_prompt": row.system_prompt, "version": row.version}


@never_cache
@require_http_methods(["GET", "POST"])
@dashboard.json_api
def guild_prompt(request: HttpRequest, guild_id: int) -> JsonResponse:
    needed = Membership.Role.ADMIN if request.method == "POST" else Membership.Role.USER
    guild, _membership = dashboard.get_guild_for(request, guild_id, min_role=needed)
    if request.method == "POST":
        return _update_prompt(request, guild)
    return JsonResponse(prompt_body(guild, guild.settings))


def _update_prompt(request: HttpRequest, guild: Guild) -> JsonResponse:
    try:
        data = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        return json_error(400, "bad_json", "The body must be a JSON object.")
    if not isinstance(data, dict) or not isinstance(data.get("system_prompt"), str):
        return json_error(400, "bad_json", 'Send {"system_prompt": "...", "version": <int>}.')
    version = data.get("version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        return json_error(400, "bad_json", "version must be an integer.")
    try:
        # The service validates, saves, bumps the version the bot checks and writes the audit row.
        services.settings_update(
            guild=guild,
            changes={"system_prompt": data["system_prompt"]},
            expected_version=version,
            **dashboard.who(request),
        )
    except services.StaleSettingsError as exc:
        return json_error(409, "stale", exc.messages[0])
    except ValidationError as exc:
        fields = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
        return json_error(422, "invalid", "Some values are not valid.", fields=fields)
    return JsonResponse(prompt_body(guild, GuildSettings.objects.get(guild=guild)))
