from __future__ import annotations

from typing import Any

from allauth.socialaccount.providers.discord.provider import DiscordProvider as BaseDiscordProvider
from allauth.socialaccount.providers.discord.views import DiscordOAuth2Adapter as BaseDiscordOAuth2Adapter
from django.http import HttpRequest

from accounts import discord_oauth


class DiscordOAuth2Adapter(BaseDiscordOAuth2Adapter):
    def __init__(self, request: HttpRequest) -> None:
        super().__init__(request)
        # Read per request, so a test's settings override (or a proxy) applies without a restart.
        self.authorize_url = discord_oauth.authorize_url()
        self.access_token_url = discord_oauth.token_url()
        self.profile_url = discord_oauth.profile_url()

    def complete_login(self, request: HttpRequest, app: Any, token: Any, **kwargs: Any) -> Any:
        profile = discord_oauth.fetch_profile(token.token)
        return self.get_provider().sociallogin_from_response(request, profile)


class DiscordProvider(BaseDiscordProvider):
    package = "accounts.discord"
    oauth2_adapter_class = DiscordOAuth2Adapter

    def get_default_scope(self) -> list[str]:
        return ["identify", "guilds"]
