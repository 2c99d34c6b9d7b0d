"""Every write to a guild's configuration, shared by the dashboard and the bot.

Each service validates, saves, writes one audit row with the ``{field: [before, after]}`` diff and tells the bot
by bumping ``GuildSettings.version``, all in one transaction: if any step fails, nothing changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F, Field, Q

import audit
from accounts.models import User
from audit.models import AuditLog
from guilds.effective import settings_push
from guilds.models import (
    COOLDOWN_MAX_SECONDS,
    SYSTEM_PROMPT_MAX_LENGTH,
    Channel,
    ChannelSettings,
    Guild,
    GuildSettings,
    Membership,
    RoleSettings,
)
from llm import registry
from llm.keys import own_providers

Role = Membership.Role

# The GuildSettings fields a person (or the bot) may change; everything else is bookkeeping.
EDITABLE_FIELDS = (
    "enabled",
    "allowed_channel_ids",
    "target_user_ids",
    "blocked_user_ids",
    "reply_on_mention",
    "system_prompt",
    "model",
    "fallback_model",
    "temperature",
    "max_output_tokens",
    "history_messages",
    "streaming",
    "reasoning_display",
    "daily_budget_usd",
    "user_messages_per_minute",
    "user_messages_per_day",
)
STALE_MESSAGE = "Someone else saved these settings since you opened the page; reload to see their changes."


class StaleSettingsError(ValidationError):
    """The form was opened at an older ``GuildSettings.version`` than the one stored."""


def _json(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value


def _settings_changed(guild: Guild) -> None:
    """Invalidate the bot's copy: with Redis the change is pushed to every bot process once committed; in any case
    the bot compares this version at most every BOT_SETTINGS_RECHECK_SECONDS (botcore/settings_cache.py), which works
    across processes with no shared cache, on SQLite as on PostgreSQL."""
    GuildSettings.objects.filter(guild=guild).update(version=F("version") + 1)
    guild_id = guild.discord_id
    transaction.on_commit(lambda: settings_push(guild_id))


def _actor_label(actor: User | None, acting: Membership | None = None) -> str | None:
    if actor is None:
        return None  # audit.record: "system", or the caller's own label
    if acting is not None and acting.pk is None:
        return AuditLog.ActorKind.ADMIN  # an operator acting without a membership
    return AuditLog.ActorKind.USER


def _prompt_too_long(length: int) -> str:
    return f"The prompt is {length} characters long; the limit is {SYSTEM_PROMPT_MAX_LENGTH}."


def _validate_model(field: str, model_id: str, guild_pk: int | None = None) -> None:
    # A server may use a provider through its own key (llm/keys.py), or only through it (LLM_REQUIRE_SERVER_KEYS).
    own = own_providers(guild_pk) if guild_pk is not None else None
    try:
        registry.validate_model_id(model_id, own)
    except ValidationError as exc:
        raise ValidationError({field: exc.messages}) from None


def _validate_settings(row: GuildSettings, diff: dict[str, list[Any]]) -> None:
    exclude = [f.name for f in GuildSettings._meta.fields if f.name not in diff]
    row.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
    if len(row.system_prompt) > SYSTEM_PROMPT_MAX_LENGTH:  # a TextField's max_length is not a validator
        raise ValidationError({"system_prompt": _prompt_too_long(len(row.system_prompt))})
    for field in ("model", "fallback_model"):
        if field in diff and getattr(row, field):
            _validate_model(field, getattr(row, field), row.guild_id)
    if "allowed_channel_ids" in diff:
        added = set(row.allowed_channel_ids) - set(diff["allowed_channel_ids"][0] or [])
        known = set(
            Channel.objects.filter(guild_id=row.guild_id, discord_id__in=added).values_list(
                "discord_id", flat=True
            )
        )
        if added - known:
            unknown = ", ".join(str(i) for i in sorted(added - known))
            raise ValidationError(
                {"allowed_channel_ids": f"Unknown channel id(s) for this server: {unknown}."}
            )


@transaction.atomic
def settings_update(
    *,
    guild: Guild,
    actor: User | None,
    changes: dict[str, Any],
    expected_version: int | None = None,
    ip: str | None = None,
    actor_label: str | None = None,
    action: str = "settings.update",
    target: str = "settings",
) -> dict[str, list[Any]]:
    """Apply ``changes`` to the guild's settings; returns the ``{field: [before, after]}`` actually changed.

    ``expected_version`` is the version the editor started from: if someone saved since, nothing changes and
    ``StaleSettingsError`` is raised. Nothing changed means no save, no version bump and no audit row.
    """
    unknown = sorted(set(changes) - set(EDITABLE_FIELDS))
    if unknown:
        raise ValidationError(f"These settings cannot be changed: {', '.join(unknown)}.")
    row = GuildSettings.objects.select_for_update().get(guild=guild)
    if expected_version is not None and row.version != expected_version:
        raise StaleSettingsError(STALE_MESSAGE, code="stale")
    diff: dict[str, list[Any]] = {}
    for name, value in changes.items():
        before = getattr(row, name)
        field = GuildSettings._meta.get_field(name)
        assert isinstance(field, Field)
        setattr(row, name, field.to_python(value))
        if getattr(row, name) != before:
            diff[name] = [_json(before), _json(getattr(row, name))]
    if not diff:
        return diff
    _validate_settings(row, diff)
    row.save(update_fields=[*diff, "updated_at"])
    _settings_changed(guild)
    audit.record(
        action=action,
        guild=guild,
        actor=actor,
        actor_label=actor_label or _actor_label(actor),
        target=target,
        changes=diff,
        ip=ip,
    )
    return diff


def settings_model_set_from_discord(
    *, guild_id: int, discord_user_id: int, model: str
) -> dict[str, list[Any]]:
    """``/parley model``: ADMIN and above switch the guild's model, audited as their Parley account."""
    user = User.objects.filter(discord_id=discord_user_id, is_active=True).first()
    if user is None:
        raise PermissionDenied("Log in to the Parley dashboard once so I know who you are, then try again.")
    guild = Guild.objects.get(discord_id=guild_id)
    acting = Membership.objects.acting(user, guild)
    if acting is None or not acting.can_manage_settings:
        raise PermissionDenied("Only this server's Parley admins can change the model.")
    return settings_update(guild=guild, actor=user, changes={"model": model}, target="settings (via /parley)")


@dataclass(frozen=True)
class RevertPreview:
    """What reverting a ``settings.update`` entry would do, as of settings ``version``."""

    version: int
    rows: list[tuple[str, Any, Any]]  # (field, value now, value after the revert) of the fields it changes
    changed_since: list[str]  # fields a later change moved to a third value: the revert is refused

    @property
    def allowed(self) -> bool:
        return bool(self.rows) and not self.changed_since


def _revertable(entry: AuditLog) -> dict[str, list[Any]]:
    if entry.action != "settings.update" or entry.guild is None:
        raise ValidationError("Only a settings change can be reverted.")
    return {
        name: values
        for name, values in entry.changes.items()
        if name in EDITABLE_FIELDS and isinstance(values, list) and len(values) == 2
    }


def _revert_preview(row: GuildSettings, changes: dict[str, list[Any]]) -> RevertPreview:
    rows, changed_since = [], []
    for name, (before, after) in changes.items():
        field = GuildSettings._meta.get_field(name)
        assert isinstance(field, Field)
        current = getattr(row, name)
        if current == field.to_python(before):
            continue  # already back at the entry's "before" value: nothing to put back, nothing overwritten
        if current != field.to_python(after):
            changed_since.append(name)
        rows.append((name, _json(current), before))
    return RevertPreview(version=row.version, rows=rows, changed_since=changed_since)


def settings_revert_preview(*, entry: AuditLog) -> RevertPreview:
    """What ``settings_revert`` would change now, for the confirmation step (``ValidationError`` if ``entry`` is
    not a settings change)."""
    changes = _revertable(entry)
    return _revert_preview(GuildSettings.objects.get(guild=entry.guild), changes)


@transaction.atomic
def settings_revert(
    *, entry: AuditLog, actor: User, expected_version: int | None = None, ip: str | None = None
) -> dict[str, list[Any]]:
    """Put back the ``before`` values of a ``settings.update`` entry, audited as ``settings.revert``.

    A revert never overwrites a change made after ``entry``: if any field it changed now holds a third value (not
    the entry's "after", which the revert replaces, nor its "before", which needs no change), nothing is reverted
    and the error names those fields. Refusing the whole revert rather than reverting the other fields keeps an
    entry's fields together (a model and its fallback, a budget and its limits); the person can edit the settings
    instead, or revert the later entry first. ``expected_version`` is the settings version the confirmation step
    showed (``settings_revert_preview``): if anything was saved since, ``StaleSettingsError`` and nothing changes.
    """
    changes = _revertable(entry)
    row = GuildSettings.objects.select_for_update().get(guild=entry.guild)
    if expected_version is not None and row.version != expected_version:
        raise StaleSettingsError(STALE_MESSAGE, code="stale")
    preview = _revert_preview(row, changes)
    if preview.changed_since:
        fields = ", ".join(preview.changed_since)
        raise ValidationError(
            f"Not reverted: {fields} changed again after this entry, and a revert would overwrite that later "
            "change. Edit the settings instead.",
            code="changed_since",
        )
    diff = settings_update(
        guild=entry.guild,  # type: ignore[arg-type]  # checked by _revertable
        actor=actor,
        changes={name: before for name, _, before in preview.rows},
        expected_version=expected_version,
        ip=ip,
        action="settings.revert",
        target=f"entry:{entry.pk}",
    )
    if not diff:
        raise ValidationError("Nothing to revert: the settings already have these values.")
    return diff


def _override_changed(
    *,
    guild: Guild,
    actor: User | None,
    target: str,
    action: str,
    diff: dict[str, list[Any]],
    ip: str | None,
) -> None:
    _settings_changed(guild)
    audit.record(
        action=action,
        guild=guild,
        actor=actor,
        actor_label=_actor_label(actor),
        target=target,
        changes=diff,
        ip=ip,
    )


def _check_prompt_and_model(
    system_prompt: str, model: str, before: dict[str, Any], guild_pk: int | None = None
) -> None:
    if len(system_prompt) > SYSTEM_PROMPT_MAX_LENGTH:
        raise ValidationError({"system_prompt": _prompt_too_long(len(system_prompt))})
    if model and model != before.get("model"):
        _validate_model("model", model, guild_pk)


def _check_mode(mode: str, cooldown_seconds: int) -> None:
    if mode not in ChannelSettings.Mode.values:
        raise ValidationError({"mode": "Pick a conversation mode from the list."})
    if isinstance(cooldown_seconds, bool) or not 0 <= cooldown_seconds <= COOLDOWN_MAX_SECONDS:
        raise ValidationError(
            {"cooldown_seconds": f"Enter a number of seconds from 0 to {COOLDOWN_MAX_SECONDS}."}
        )
    if cooldown_seconds and mode != ChannelSettings.Mode.EVERYONE:
        raise ValidationError(
            {"cooldown_seconds": "A cooldown applies only when Parley answers every message: set it to 0."}
        )


@transaction.atomic
def channel_override_set(
    *,
    guild: Guild,
    actor: User | None,
    channel_id: int,
    system_prompt: str = "",
    model: str = "",
    mode: str = "",
    cooldown_seconds: int = 0,
    ip: str | None = None,
) -> dict[str, list[Any]]:
    """Create or change one channel's override: its prompt, model and conversation mode (empty values inherit
    the guild's; ``ChannelSettings`` explains the modes)."""
    if not Channel.objects.filter(guild=guild, discord_id=channel_id).exists():
        raise ValidationError({"channel_id": "Unknown channel for this server."})
    _check_mode(mode, cooldown_seconds)
    if not system_prompt and not model and not mode:
        raise ValidationError("Set a prompt, a model or a conversation mode, or remove the override.")
    override = ChannelSettings.objects.select_for_update().filter(guild=guild, channel_id=channel_id).first()
    fields = ("system_prompt", "model", "mode", "cooldown_seconds")
    # A new override's mode and cooldown start at the defaults: the audit row names them only when set.
    before = (
        {name: getattr(override, name) for name in fields}
        if override
        else {"mode": "", "cooldown_seconds": 0}
    )
    after = {
        "system_prompt": system_prompt,
        "model": model,
        "mode": mode,
        "cooldown_seconds": cooldown_seconds,
    }
    _check_prompt_and_model(system_prompt, model, before, guild.pk)
    diff = {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}
    if not diff:
        return diff
    ChannelSettings.objects.update_or_create(guild=guild, channel_id=channel_id, defaults=after)
    _override_changed(
        guild=guild,
        actor=actor,
        target=f"channel:{channel_id}",
        action="channel_override.set",
        diff=diff,
        ip=ip,
    )
    return diff


@transaction.atomic
def channel_override_remove(
    *, guild: Guild, actor: User | None, channel_id: int, ip: str | None = None
) -> dict[str, list[Any]]:
    override = ChannelSettings.objects.select_for_update().filter(guild=guild, channel_id=channel_id).first()
    if override is None:
        raise ValidationError("This channel has no override.")
    diff: dict[str, list[Any]] = {
        "system_prompt": [override.system_prompt, None],
        "model": [override.model, None],
    }
    if override.mode:
        diff |= {"mode": [override.mode, None], "cooldown_seconds": [override.cooldown_seconds, None]}
    override.delete()
    _override_changed(
        guild=guild,
        actor=actor,
        target=f"channel:{channel_id}",
        action="channel_override.remove",
        diff=diff,
        ip=ip,
    )
    return diff


@transaction.atomic
def role_override_set(
    *,
    guild: Guild,
    actor: User | None,
    role_id: int,
    system_prompt: str = "",
    model: str = "",
    ip: str | None = None,
) -> dict[str, list[Any]]:
    """Create or change one Discord role's prompt/model override (``RoleSettings`` says which one wins)."""
    if isinstance(role_id, bool) or not isinstance(role_id, int) or not 0 < role_id < 2**63:
        raise ValidationError({"role_id": "Enter a Discord role id (a positive number)."})
    if role_id == guild.discord_id:
        raise ValidationError(
            {"role_id": "That is @everyone: change the server's prompt and model above instead."}
        )
    if not system_prompt and not model:
        raise ValidationError("Set a prompt or a model, or remove the override.")
    override = RoleSettings.objects.select_for_update().filter(guild=guild, role_id=role_id).first()
    before = {"system_prompt": override.system_prompt, "model": override.model} if override else {}
    after = {"system_prompt": system_prompt, "model": model}
    _check_prompt_and_model(system_prompt, model, before, guild.pk)
    diff = {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}
    if not diff:
        return diff
    RoleSettings.objects.update_or_create(guild=guild, role_id=role_id, defaults=after)
    _override_changed(
        guild=guild, actor=actor, target=f"role:{role_id}", action="role_override.set", diff=diff, ip=ip
    )
    return diff


@transaction.atomic
def role_override_remove(
    *, guild: Guild, actor: User | None, role_id: int, ip: str | None = None
) -> dict[str, list[Any]]:
    override = RoleSettings.objects.select_for_update().filter(guild=guild, role_id=role_id).first()
    if override is None:
        raise ValidationError("This role has no override.")
    diff = {"system_prompt": [override.system_prompt, None], "model": [override.model, None]}
    override.delete()
    _override_changed(
        guild=guild, actor=actor, target=f"role:{role_id}", action="role_override.remove", diff=diff, ip=ip
    )
    return diff


# --- Members ---------------------------------------------------------------------------------------------------


def _acting(guild: Guild, actor: User) -> Membership:
    acting = Membership.objects.acting(actor, guild)
    if acting is None or not acting.can_manage_members:
        raise PermissionDenied("You cannot manage this server's members.")
    return acting


def _member_target(user: User) -> str:
    return f"user:{user.discord_id or user.pk}"


def _member_audit(
    action: str, member: Membership, actor: User, acting: Membership, changes: dict[str, Any], ip: str | None
) -> None:
    audit.record(
        action=action,
        guild=member.guild,
        actor=actor,
        actor_label=_actor_label(actor, acting),
        target=_member_target(member.user),
        changes=changes,
        ip=ip,
    )


def _owner_count(guild: Guild) -> int:
    # Locks the owners' rows, so two admins removing the last two owners at once cannot both succeed.
    return len(Membership.objects.select_for_update().filter(guild=guild, role=Role.OWNER).values_list("pk"))


def _check_role(role: str, acting: Membership) -> None:
    if role not in Role.values:
        raise ValidationError({"role": "Pick a role: owner, admin or user."})
    if not acting.can_assign(role):
        raise ValidationError({"role": "You cannot grant a role above your own."})


def _user_for(user_or_discord_id: User | int) -> User:
    """A user by object or Discord id; an unknown id gets a placeholder account that their first login claims."""
    if isinstance(user_or_discord_id, User):
        return user_or_discord_id
    discord_id = user_or_discord_id
    if isinstance(discord_id, bool) or not isinstance(discord_id, int) or not 0 < discord_id < 2**63:
        raise ValidationError({"user": "Enter a Discord user id (a positive number)."})
    user = User.objects.filter(discord_id=discord_id).first()
    if user is None:
        user = User(username=f"discord-{discord_id}", discord_id=discord_id)
        user.set_unusable_password()
        user.save()
    return user


@transaction.atomic
def member_add(
    *, guild: Guild, actor: User, user_or_discord_id: User | int, role: str, ip: str | None = None
) -> Membership:
    acting = _acting(guild, actor)
    _check_role(role, acting)
    user = _user_for(user_or_discord_id)
    if Membership.objects.filter(guild=guild, user=user).exists():
        raise ValidationError({"user": f"{user} is already a member of this server."})
    membership = Membership.objects.create(guild=guild, user=user, role=role)
    audit.record(
        action="member.add",
        guild=guild,
        actor=actor,
        actor_label=_actor_label(actor, acting),
        target=_member_target(user),
        changes={"role": [None, role]},
        ip=ip,
    )
    return membership


def _check_owner_leaves(target: Membership, actor: User) -> None:
    if target.role == Role.OWNER and _owner_count(target.guild) <= 1:
        if target.user_id == actor.pk:
            raise ValidationError("You are the last owner: make someone else an owner first.")
        raise ValidationError("A server needs at least one owner: this is the last one.")


@transaction.atomic
def member_role_change(
    *, membership: Membership, actor: User, role: str, ip: str | None = None
) -> dict[str, list[Any]]:
    acting = _acting(membership.guild, actor)
    target = Membership.objects.select_for_update().select_related("user", "guild").get(pk=membership.pk)
    if not acting.can_change(target):
        raise ValidationError("Admins cannot change an owner.")
    _check_role(role, acting)
    if target.role == role:
        return {}
    if role != Role.OWNER:
        _check_owner_leaves(target, actor)
    diff = {"role": [target.role, role]}
    target.role = role
    target.save(update_fields=["role"])
    _member_audit("member.role_change", target, actor, acting, diff, ip)
    return diff


@transaction.atomic
def member_remove(*, membership: Membership, actor: User, ip: str | None = None) -> None:
    acting = _acting(membership.guild, actor)
    target = Membership.objects.select_for_update().select_related("user", "guild").get(pk=membership.pk)
    if not acting.can_change(target):
        raise ValidationError("Admins cannot remove an owner.")
    _check_owner_leaves(target, actor)
    target.delete()
    _member_audit("member.remove", target, actor, acting, {"role": [target.role, None]}, ip)


@transaction.atomic
def ownership_bootstrap(
    *, user: User, owned_guild_ids: set[int] | frozenset[int] = frozenset()
) -> list[Guild]:
    """Make ``user`` an OWNER of every joined guild they own (by the bot's owner id or Discord's OAuth list)."""
    if user.discord_id is None:
        return []
    owned = Guild.objects.filter(is_active=True).filter(
        Q(owner_discord_id=user.discord_id) | Q(discord_id__in=owned_guild_ids)
    )
    memberships = {m.guild_id: m for m in Membership.objects.filter(user=user, guild__in=owned)}
    granted = []
    for guild in owned:
        membership = memberships.get(guild.pk)
        if membership is not None and membership.is_owner:
            continue
        before = membership.role if membership else None
        Membership.objects.update_or_create(guild=guild, user=user, defaults={"role": Role.OWNER})
        audit.record(
            action="member.add" if before is None else "member.role_change",
            guild=guild,
            actor_label=AuditLog.ActorKind.SYSTEM,
            target=_member_target(user),
            changes={"role": [before, Role.OWNER]},
        )
        granted.append(guild)
    return granted
