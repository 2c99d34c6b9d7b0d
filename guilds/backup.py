"""A server's configuration as a file, and a file imported into a server (the same one or another).

The file is JSON, ``"format": "parley-config"``, ``"version": 1``::

    {
      "format": "parley-config",
      "version": 1,
      "exported_at": "2025-01-31T12:00:00+00:00",
      "guild": {"name": "My server", "discord_id": 111111111111111111},
      "settings": {"enabled": true, "model": "offline/parley-offline", "daily_budget_usd": "5.00", ...},
      "channel_overrides": [
        {"channel_id": 222222222222222221, "channel_name": "general",
         "system_prompt": "", "model": "", "mode": "everyone", "cooldown_seconds": 30}
      ],
      "role_overrides": [{"role_id": 333333333333333333, "system_prompt": "Be formal.", "model": ""}]
    }

``settings`` holds the fields of ``guilds.services.EDITABLE_FIELDS`` (``daily_budget_usd`` as text, so no cent is
rounded through a float). Ids are Discord ids; no database row id and no provider key is ever written: a server's
keys stay with it. ``guild``, ``exported_at`` and ``channel_name`` are for the people reading the file.

Importing sets each setting the file names and, for each overrides list it has, makes the server's overrides that
list (overrides not in it are removed); a setting or a section absent from the file is left as it is. Channels are
matched by id, so a file from another server names channels this one does not have: their overrides are skipped,
and so are those ids in ``allowed_channel_ids`` (when none of them is here, the server keeps its own list, since an
empty one would mean every channel). The preview lists what is skipped. Role ids are imported as they are: Parley
does not store a server's roles (a role of another server matches nobody here).

Every write goes through ``guilds.services`` in one transaction, so the import is checked exactly as an edit in the
dashboard is and writes the same audit entries (one per service call, each bumping the settings version: a settings
import can be reverted from the log like any settings change), then one ``config.import`` entry naming the file's
server. The preview makes the same calls and rolls them back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models, transaction
from django.utils import timezone

import audit
from accounts.models import User
from guilds import services
from guilds.models import Channel, ChannelSettings, Guild, GuildSettings, RoleSettings, validate_discord_ids

FORMAT = "parley-config"
VERSION = 1
MAX_BYTES = 256 * 1024
TOP_KEYS = {"format", "version", "exported_at", "guild", "settings", "channel_overrides", "role_overrides"}
# What each override carries besides its id, with the JSON type and the value when absent.
CHANNEL_FIELDS: dict[str, tuple[type, Any]] = {
    "system_prompt": (str, ""),
    "model": (str, ""),
    "mode": (str, ""),
    "cooldown_seconds": (int, 0),
}
ROLE_FIELDS: dict[str, tuple[type, Any]] = {"system_prompt": (str, ""), "model": (str, "")}


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value


def config_export(guild: Guild) -> dict[str, Any]:
    """``guild``'s configuration in the file format above."""
    row = GuildSettings.objects.get(guild=guild)
    names = dict(Channel.objects.filter(guild=guild).values_list("discord_id", "name"))
    channels = ChannelSettings.objects.filter(guild=guild).order_by("channel_id")
    return {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": timezone.now().isoformat(timespec="seconds"),
        "guild": {"name": guild.name, "discord_id": guild.discord_id},
        "settings": {name: _plain(getattr(row, name)) for name in services.EDITABLE_FIELDS},
        "channel_overrides": [
            {"channel_id": o.channel_id, "channel_name": names.get(o.channel_id, "")}
            | {name: getattr(o, name) for name in CHANNEL_FIELDS}
            for o in channels
        ],
        "role_overrides": [
            {"role_id": o.role_id} | {name: getattr(o, name) for name in ROLE_FIELDS}
            for o in RoleSettings.objects.filter(guild=guild).order_by("role_id")
        ],
    }


# --- Reading a file ----------------------------------------------------------------------------------------------
# Errors are keyed by where they are in the file: "file", "settings.temperature", "channel_overrides[2].model".


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")  # json.loads would accept NaN and Infinity


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63


def _setting_error(name: str, value: Any) -> str | None:
    """Why ``value`` has the wrong JSON type for setting ``name`` (ranges are the services' to check), or None."""
    model_field = GuildSettings._meta.get_field(name)
    assert isinstance(model_field, models.Field)
    if value is None:
        return None if model_field.null else "Expected a value, not null."
    if isinstance(model_field, models.BooleanField):
        return None if isinstance(value, bool) else "Expected true or false."
    if isinstance(value, bool):
        return (
            "Expected a number, not true or false." if not isinstance(model_field, models.JSONField) else None
        )
    if isinstance(model_field, models.IntegerField):
        return None if isinstance(value, int) else "Expected a whole number."
    if isinstance(model_field, models.FloatField):
        return None if isinstance(value, int | float) else "Expected a number."
    if isinstance(model_field, models.DecimalField):
        try:
            ok = isinstance(value, int | float | str) and Decimal(str(value)).is_finite()
        except ArithmeticError:
            ok = False
        return None if ok else 'Expected an amount, such as "5.00".'
    if isinstance(model_field, models.JSONField):
        try:
            validate_discord_ids(value)
        except ValidationError as exc:
            return " ".join(exc.messages)
        return None
    return None if isinstance(value, str) else "Expected text."


def _settings(value: Any, errors: dict[str, list[str]]) -> dict[str, Any]:
    if not isinstance(value, dict):
        errors["settings"] = ["Expected an object of settings."]
        return {}
    for name in sorted(set(value) - set(services.EDITABLE_FIELDS)):
        errors[f"settings.{name}"] = ["Unknown setting."]
    settings = {}
    for name in services.EDITABLE_FIELDS:
        if name not in value:
            continue
        if problem := _setting_error(name, value[name]):
            errors[f"settings.{name}"] = [problem]
        elif isinstance(value[name], float) and name == "daily_budget_usd":
            settings[name] = str(value[name])  # Decimal(1.1) would carry the float's 50 digits
        else:
            settings[name] = value[name]
    return settings


def _overrides(
    value: Any, section: str, id_key: str, fields: dict[str, tuple[type, Any]], errors: dict[str, list[str]]
) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        errors[section] = ["Expected a list."]
        return []
    allowed = {id_key, *fields} | ({"channel_name"} if id_key == "channel_id" else set())
    overrides, seen = [], set()
    for index, item in enumerate(value):
        where = f"{section}[{index}]"
        if not isinstance(item, dict):
            errors[where] = ["Expected an object."]
            continue
        for key in sorted(set(item) - allowed):
            errors[f"{where}.{key}"] = ["Unknown field."]
        ident = item.get(id_key)
        if not _is_id(ident):
            errors[f"{where}.{id_key}"] = ["Expected a Discord id (a positive whole number)."]
        elif ident in seen:
            errors[f"{where}.{id_key}"] = ["This id is in the list twice."]
        seen.add(ident)
        parsed = {id_key: ident, "index": index, "name": str(item.get("channel_name") or "")}
        for name, (kind, default) in fields.items():
            parsed[name] = item.get(name, default)
            if not isinstance(parsed[name], kind) or isinstance(parsed[name], bool):
                errors[f"{where}.{name}"] = ["Expected a whole number." if kind is int else "Expected text."]
        overrides.append(parsed)
    return overrides


def config_parse(raw: bytes) -> dict[str, Any]:
    """A file's configuration, its types checked (``ValidationError`` keyed by place in the file otherwise); the
    values themselves are checked by the services, at preview and at import."""
    if len(raw) > MAX_BYTES:
        raise ValidationError(
            {"file": f"The file is larger than {MAX_BYTES // 1024} KB: is it a Parley export?"}
        )
    try:
        data = json.loads(raw.decode("utf-8-sig"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ValidationError({"file": f"This file is not valid JSON ({exc})."}) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValidationError({"format": f'Not a Parley configuration file: it has no "format": "{FORMAT}".'})
    if data.get("version") != VERSION:
        raise ValidationError(
            {"version": f"This file is version {data.get('version')!r}; this Parley reads version {VERSION}."}
        )
    errors: dict[str, list[str]] = {name: ["Unknown section."] for name in sorted(set(data) - TOP_KEYS)}
    config: dict[str, Any] = {"source": _source(data.get("guild"))}
    if "settings" in data:
        config["settings"] = _settings(data["settings"], errors)
    if "channel_overrides" in data:
        config["channels"] = _overrides(
            data["channel_overrides"], "channel_overrides", "channel_id", CHANNEL_FIELDS, errors
        )
    if "role_overrides" in data:
        config["roles"] = _overrides(data["role_overrides"], "role_overrides", "role_id", ROLE_FIELDS, errors)
    if errors:
        raise ValidationError(errors)
    return config


def _source(guild: Any) -> str:
    """The exported server, as the ``config.import`` entry names it."""
    if not isinstance(guild, dict):
        return "a file"
    name, ident = str(guild.get("name") or "")[:100], guild.get("discord_id")
    return f"{name} ({ident})" if _is_id(ident) else name or "a file"


# --- Importing -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OverrideChange:
    ident: int  # the Discord channel or role id
    action: str  # "added", "changed" or "removed"
    changes: dict[str, list[Any]]  # {field: [before, after]}, as the service returned it


@dataclass
class Plan:
    """What an import changes (or changed): the settings version it started from, each service's diff, and what
    the file names that this server does not have."""

    version: int
    source: str
    settings: dict[str, list[Any]] = field(default_factory=dict)
    channels: list[OverrideChange] = field(default_factory=list)
    roles: list[OverrideChange] = field(default_factory=list)
    skipped_channels: list[tuple[int, str]] = field(default_factory=list)  # (id, name in the file)
    dropped_allowed: list[int] = field(default_factory=list)  # allowed_channel_ids not in this server
    kept_allowed: bool = False  # none of the file's allowed channels is here: the server's list is kept

    @property
    def count(self) -> int:
        return len(self.settings) + len(self.channels) + len(self.roles)


@contextmanager
def _collect(where: str, errors: dict[str, list[str]]) -> Iterator[None]:
    """A service's ValidationError, keyed by ``where`` in the file; the import goes on to report every error."""
    try:
        yield
    except ValidationError as exc:
        if hasattr(exc, "error_dict"):
            for name, messages in exc.message_dict.items():
                key = where if name == NON_FIELD_ERRORS else f"{where}.{name}"
                errors.setdefault(key, []).extend(messages)
        else:
            errors.setdefault(where, []).extend(exc.messages)


def _allowed_here(settings: dict[str, Any], known: set[int], plan: Plan) -> dict[str, Any]:
    ids = settings.get("allowed_channel_ids")
    if not ids:
        return settings
    plan.dropped_allowed = [i for i in ids if i not in known]
    kept = [i for i in ids if i in known]
    if kept:
        return settings | {"allowed_channel_ids": kept}
    plan.kept_allowed = True
    return {name: value for name, value in settings.items() if name != "allowed_channel_ids"}


def _import_overrides(
    *,
    kind: str,
    items: list[dict[str, Any]],
    current: set[int],
    who: dict[str, Any],
    errors: dict[str, list[str]],
) -> list[OverrideChange]:
    set_, remove = (
        (services.channel_override_set, services.channel_override_remove)
        if kind == "channel"
        else (services.role_override_set, services.role_override_remove)
    )
    id_key, fields = (f"{kind}_id", CHANNEL_FIELDS if kind == "channel" else ROLE_FIELDS)
    changes = []
    wanted = {item[id_key] for item in items}
    for ident in sorted(current - wanted):
        which: dict[str, Any] = {id_key: ident}
        changes.append(OverrideChange(ident, "removed", remove(**who, **which)))
    for item in items:
        with _collect(f"{kind}_overrides[{item['index']}]", errors):
            diff = set_(**who, **{id_key: item[id_key]}, **{name: item[name] for name in fields})
            if diff:
                changes.append(
                    OverrideChange(item[id_key], "changed" if item[id_key] in current else "added", diff)
                )
    return changes


@transaction.atomic
def config_import(
    *,
    guild: Guild,
    actor: User | None,
    config: dict[str, Any],
    expected_version: int | None = None,
    ip: str | None = None,
) -> Plan:
    """Apply a ``config_parse``d file to ``guild`` through the services; every error at once, keyed by place in the
    file, and nothing changed. ``expected_version``: the settings version the preview showed (stale otherwise)."""
    row = GuildSettings.objects.select_for_update().get(guild=guild)
    if expected_version is not None and row.version != expected_version:
        raise services.StaleSettingsError(services.STALE_MESSAGE, code="stale")
    plan = Plan(version=row.version, source=config["source"])
    known = set(Channel.objects.filter(guild=guild).values_list("discord_id", flat=True))
    who: dict[str, Any] = {"guild": guild, "actor": actor, "ip": ip}
    errors: dict[str, list[str]] = {}
    if "settings" in config:
        with _collect("settings", errors):
            changes = _allowed_here(config["settings"], known, plan)
            plan.settings = services.settings_update(**who, changes=changes, target="settings (import)")
    if "channels" in config:
        here = [item for item in config["channels"] if item["channel_id"] in known]
        plan.skipped_channels = [
            (item["channel_id"], item["name"])
            for item in config["channels"]
            if item["channel_id"] not in known
        ]
        current = set(ChannelSettings.objects.filter(guild=guild).values_list("channel_id", flat=True))
        plan.channels = _import_overrides(kind="channel", items=here, current=current, who=who, errors=errors)
    if "roles" in config:
        current = set(RoleSettings.objects.filter(guild=guild).values_list("role_id", flat=True))
        plan.roles = _import_overrides(
            kind="role", items=config["roles"], current=current, who=who, errors=errors
        )
    if errors:
        raise ValidationError(errors)  # the transaction rolls back what the other calls did
    if plan.count:
        audit.record(
            action="config.import",
            guild=guild,
            actor=actor,
            target="settings (import)",
            changes={"from": [None, plan.source], "changes": [None, plan.count]},
            ip=ip,
        )
    return plan


def config_preview(*, guild: Guild, config: dict[str, Any]) -> Plan:
    """What ``config_import`` would change now: the same calls, rolled back (``ValidationError`` as it would)."""
    with transaction.atomic():
        plan = config_import(guild=guild, actor=None, config=config)
        transaction.set_rollback(True)
    return plan
