"""allauth glue: a Discord login creates or refreshes ``accounts.User``, makes operators staff (and others not) and
gives guild owners their OWNER membership."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter, get_adapter
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.conf import settings
from django.http import HttpRequest

from accounts import discord_oauth
from accounts.models import User, placeholder_username
from guilds.services import ownership_bootstrap


def _apply_profile(user: User, profile: dict[str, Any]) -> None:
    """Copy the Discord profile onto the user (not saved)."""
    user.discord_id = int(profile["id"])
    user.global_name = (profile.get("global_name") or "")[:100]
    user.avatar = (profile.get("avatar") or "")[:100]
    # Operator status follows OPERATOR_DISCORD_IDS at every login: an id taken off the list loses it. Superusers
    # (made with createsuperuser on the server, not by Discord) stay staff.
    user.is_staff = user.discord_id in settings.OPERATOR_DISCORD_IDS or user.is_superuser


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        """No password sign-ups: people arrive through Discord, operators through createsuperuser."""
        return False


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest, sociallogin: Any) -> bool:
        return True

    def populate_user(self, request: HttpRequest, sociallogin: Any, data: dict[str, Any]) -> Any:
        user = super().populate_user(request, sociallogin, data)
        _apply_profile(user, sociallogin.account.extra_data)
        return user

    def pre_social_login(self, request: HttpRequest, sociallogin: Any) -> None:
        """Runs on every Discord login, after allauth looked the account up."""
        if not sociallogin.is_existing:
            # Someone added by Discord id before their first login has a placeholder account: claim it.
            placeholder = User.objects.filter(discord_id=int(sociallogin.account.uid)).first()
            if placeholder is None:
                return  # a new user: save_user() below finishes the job
            sociallogin.connect(request, placeholder)
        user = sociallogin.user
        profile = sociallogin.account.extra_data
        _apply_profile(user, profile)
        fields = ["discord_id", "global_name", "avatar", "is_staff"]
        if user.username == placeholder_username(user.discord_id) and profile.get("username"):
            # Their first login: the placeholder name made when they were added by id becomes their Discord one.
            user.username = get_adapter(request).generate_unique_username([profile["username"], "user"])
            fields.append("username")
        user.save(update_fields=fields)
        self._bootstrap(user, sociallogin)

    def save_user(self, request: HttpRequest, sociallogin: Any, form: Any = None) -> Any:
        user = super().save_user(request, sociallogin, form)
        self._bootstrap(user, sociallogin)
        return user

    def _bootstrap(self, user: User, sociallogin: Any) -> None:
        """OWNER memberships for the guilds they own; the guild list is also cached for the dashboard."""
        guilds = discord_oauth.fetch_guilds(sociallogin.token.token) if sociallogin.token else None
        discord_oauth.remember_guilds(user.pk, guilds)
        owned = {int(g["id"]) for g in guilds or [] if g.get("owner") and str(g["id"]).isdigit()}
        ownership_bootstrap(user=user, owned_guild_ids=owned)
