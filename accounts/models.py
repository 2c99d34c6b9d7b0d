from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models

DISCORD_CDN = "https://cdn.discordapp.com"


def placeholder_username(discord_id: int) -> str:
    """The username of an account made for someone added by Discord id, until their first login claims it."""
    return f"discord-{discord_id}"


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
        so a refusal takes as long as a wrong password.

        A Discord account is an operator only while its id is in OPERATOR_DISCORD_IDS: one taken off the list loses
        password access at once, not at its next Discord login. Staff accounts with no Discord id (made in the
        admin) and superusers keep theirs."""
        matches = super().check_password(raw_password)
        listed = self.discord_id is None or self.discord_id in settings.OPERATOR_DISCORD_IDS
        return matches and (self.is_superuser or (self.is_staff and listed))

    @property
    def display_name(self) -> str:
        """Their Discord display name, else their username; someone added by id who has not logged in yet has
        only a placeholder username (``discord-<id>``), shown in words instead."""
        if (
            not self.global_name
            and self.discord_id
            and self.username == placeholder_username(self.discord_id)
        ):
            return f"Discord user {self.discord_id}"
        return self.global_name or self.username

    @property
    def avatar_url(self) -> str:
        if self.discord_id and self.avatar:
            ext = "gif" if self.avatar.startswith("a_") else "png"
            return f"{DISCORD_CDN}/avatars/{self.discord_id}/{self.avatar}.{ext}?size=64"
        # Discord's default avatars are indexed by (id >> 22) % 6 for accounts with new usernames.
        index = (self.discord_id >> 22) % 6 if self.discord_id else 0
        return f"{DISCORD_CDN}/embed/avatars/{index}.png"
