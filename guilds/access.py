"""The one access helper every guild page uses (STYLE.md): who may see which guild, with which role."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django_htmx.middleware import HtmxDetails

from accounts.models import User
from guilds.models import Guild, Membership


class HtmxHttpRequest(HttpRequest):
    """The request dashboard views receive: django-htmx's middleware adds ``htmx`` (typing only)."""

    htmx: HtmxDetails


def _as_operator(user: User, guild: Guild, membership: Membership | None) -> Membership | None:
    """Staff act as owners of every guild, through a transient membership that is never saved."""
    if user.is_staff and (membership is None or not membership.is_owner):
        return Membership(user=user, guild=guild, role=Membership.Role.OWNER)
    return membership


def membership_for(user: User, guild: Guild) -> Membership | None:
    """The role ``user`` acts with in ``guild`` (services use it to check who may do what)."""
    return _as_operator(user, guild, Membership.objects.filter(user=user, guild=guild).first())


def get_guild_for(
    request: HttpRequest, guild_id: int, min_role: str = Membership.Role.USER
) -> tuple[Guild, Membership]:
    """The guild with Discord id ``guild_id`` and the user's membership, in one query (settings included).

    A non-member gets 404, so a guild's existence is never revealed; a member below ``min_role`` gets 403.
    """
    user = request.user
    if not isinstance(user, User):
        raise Http404("No such guild")
    membership = (
        Membership.objects.select_related("guild", "guild__settings", "user")
        .filter(user=user, guild__discord_id=guild_id)
        .first()
    )
    guild = membership.guild if membership else None
    if guild is None and user.is_staff:
        guild = Guild.objects.select_related("settings").filter(discord_id=guild_id).first()
    if guild is None:
        raise Http404("No such guild")
    membership = _as_operator(user, guild, membership)
    if membership is None or not membership.has_role(min_role):
        raise PermissionDenied("Your role in this guild does not allow this.")
    return guild, membership


def request_ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None
