from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models

DISCORD_CDN = "https://cdn.discordapp.com"


class User(AbstractUser):
    """A dashboard user: a Discord account, or an operator who logs in with a password."""

    discord_id = models.BigIntegerField(unique=True, null=True, blank=True)
    global_name = models.CharField(max_length=100, blank=True)
    avatar = models.CharField(max_length=100, blank=True, help_text="Discord avatar hash")

    def __str__(self) -> str:
        return self.display_name

    def check_password(self, raw_password: str) -> bool:
        """Passwords are for operators: anyone else logs in with Discord, so a password they managed to set never
        matches (the login page, /admin/login/, and any other form that checks one). The hash is still checked,
        so a refusal takes as long as a wrong password."""
        return super().check_password(raw_password) and self.is_staff

    @property
    def display_name(self) -> str:
        return self.global_name or self.username

    @property
    def avatar_url(self) -> str:
        if self.discord_id and self.avatar:
            ext = "gif" if self.avatar.startswith("a_") else "png"
            return f"{DISCORD_CDN}/avatars/{self.discord_id}/{self.avatar}.{ext}?size=64"
        # Discord's default avatars are indexed by (id >> 22) % 6 for accounts with new usernames.
        index = (self.discord_id >> 22) % 6 if self.discord_id else 0
        return f"{DISCORD_CDN}/embed/avatars/{index}.png"
