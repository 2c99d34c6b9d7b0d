"""Every HTTP call the dashboard makes to Discord's OAuth2 API, in one place, each with an explicit timeout.

Endpoints are built from ``settings.DISCORD_OAUTH_BASE`` at call time, so tests (and a proxy in production) can
point them at another host. The bot's REST calls go through discord.py, not through here.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

import requests
from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

TIMEOUT = (5, 10)  # (connect, read) seconds
MANAGE_GUILD = 0x20
ADMINISTRATOR = 0x8
# What the bot needs: view channels, send messages (and in threads), embed links, attach files, read history.
BOT_PERMISSIONS = 0x400 | 0x800 | 0x4000000000 | 0x4000 | 0x8000 | 0x10000


def authorize_url() -> str:
    return f"{settings.DISCORD_OAUTH_BASE}/oauth2/authorize"


def token_url() -> str:
    return f"{settings.DISCORD_OAUTH_BASE}/api/oauth2/token"


def profile_url() -> str:
    return f"{settings.DISCORD_OAUTH_BASE}/api/users/@me"


def guilds_url() -> str:
    return f"{settings.DISCORD_OAUTH_BASE}/api/users/@me/guilds"


def _get(url: str, access_token: str) -> Any:
    response = requests.get(url, headers={"Authorization": f"Bearer {access_token}"}, timeout=TIMEOUT)
    response.raise_for_status()
    return response.json()


def fetch_profile(access_token: str) -> dict[str, Any]:
    """The logged-in user's profile; raises ``requests.RequestException`` (allauth shows its error page)."""
    profile = _get(profile_url(), access_token)
    if not isinstance(profile, dict) or not str(profile.get("id", "")).isdigit():
        raise requests.RequestException("Discord's profile answer has no user id")
    return profile


def fetch_guilds(access_token: str) -> list[dict[str, Any]] | None:
    """The user's guilds, or None when Discord cannot be reached: a missing list never blocks a login."""
    try:
        guilds = _get(guilds_url(), access_token)
    except (requests.RequestException, ValueError) as exc:
        logger.warning("discord: reading the user's guild list failed: %s", exc)
        return None
    return [g for g in guilds if isinstance(g, dict) and "id" in g] if isinstance(guilds, list) else None


def _cache_key(user_pk: int) -> str:
    return f"oauth-guilds:{user_pk}"


def remember_guilds(user_pk: int, guilds: list[dict[str, Any]] | None) -> None:
    # A failed read is remembered briefly too, so a Discord outage does not slow every page by a timeout.
    seconds = settings.DISCORD_GUILD_LIST_CACHE_SECONDS if guilds is not None else 10
    cache.set(_cache_key(user_pk), guilds or [], seconds)


def user_guilds(user_pk: int) -> list[dict[str, Any]]:
    """The guild list of a logged-in user, read with their stored token and cached briefly."""
    from allauth.socialaccount.models import SocialToken

    guilds: list[dict[str, Any]] | None = cache.get(_cache_key(user_pk))
    if guilds is None:
        token = (
            SocialToken.objects.filter(account__user_id=user_pk, account__provider="discord")
            .order_by("-id")
            .values_list("token", flat=True)
            .first()
        )
        guilds = fetch_guilds(token) if token else []
        remember_guilds(user_pk, guilds)
    return guilds or []


def can_manage(guild: dict[str, Any]) -> bool:
    """Owners and members with Manage Server (or Administrator) may add the bot to a guild."""
    try:
        permissions = int(guild.get("permissions") or 0)
    except (TypeError, ValueError):
        permissions = 0
    return bool(guild.get("owner")) or bool(permissions & (MANAGE_GUILD | ADMINISTRATOR))


def invite_url(guild_id: int | str) -> str:
    """The "Add Parley" link for one guild; empty when no client id is configured."""
    if not settings.DISCORD_CLIENT_ID:
        return ""
    query = urlencode(
        {
            "client_id": settings.DISCORD_CLIENT_ID,
            "scope": "bot applications.commands",
            "permissions": BOT_PERMISSIONS,
            "guild_id": guild_id,
            "disable_guild_select": "true",
        }
    )
    return f"{authorize_url()}?{query}"
