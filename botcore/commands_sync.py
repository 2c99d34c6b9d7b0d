"""Database look-ups for slash commands, run through ``sync_to_async`` from the cog."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from accounts.models import User
from guilds import services
from guilds.models import Guild, Membership


def member_role(guild_id: int, user_id: int) -> tuple[User | None, str | None]:
    """The Parley account of a Discord user and their dashboard role in the guild (None without one)."""
    user = User.objects.filter(discord_id=user_id, is_active=True).first()
    if user is None:
        return None, None
    membership = Membership.objects.filter(user=user, guild__discord_id=guild_id).only("role").first()
    if membership is not None:
        return user, membership.role
    owner = Guild.objects.filter(discord_id=guild_id, owner_discord_id=user_id).exists()
    return user, (Membership.Role.OWNER if owner else None)


def model_set(*, guild_id: int, user_id: int, model: str) -> dict[str, list[Any]]:
    """``/parley model``: ADMIN and above switch the guild's model, audited as their Parley account."""
    user, role = member_role(guild_id, user_id)
    if user is None:
        raise PermissionError("Log in to the Parley dashboard once so I know who you are, then try again.")
    if role is None or not Membership(role=role).has_role(Membership.Role.ADMIN):
        raise PermissionError("Only this server's Parley admins can change the model.")
    guild = Guild.objects.get(discord_id=guild_id)
    return services.settings_update(
        guild=guild, actor=user, changes={"model": model}, target="settings (via /parley)"
    )


def dashboard_url(guild_id: int) -> str:
    return f"{settings.SITE_URL}/dashboard/guilds/{guild_id}/settings/"
