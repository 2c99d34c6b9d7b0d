from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from accounts.models import DISCORD_CDN
from llm import reasoning, registry

SYSTEM_PROMPT_MAX_LENGTH = 4000
DEFAULT_SYSTEM_PROMPT = "You are Parley, a helpful assistant in a Discord server. Answer concisely."


def default_model() -> str:
    """A new guild's model: ``LLM_DEFAULT_MODEL`` when its provider has a key, else the offline model."""
    return registry.default_model_id()


DISCORD_ID_RE = re.compile(r"[0-9]{1,19}")


def parse_discord_id(text: str) -> int | None:
    """``text`` as a Discord id (a snowflake: 1 to 2**63 - 1), or None.

    Only ASCII digits: ``str.isdigit()`` also accepts "²" and "٣", which ``int()`` then refuses or reads as
    another number, and a longer number would overflow a BigIntegerField lookup.
    """
    if not DISCORD_ID_RE.fullmatch(text):
        return None
    value = int(text)
    return value if 0 < value < 2**63 else None


def validate_discord_ids(value: object) -> None:
    if not isinstance(value, list) or not all(
        isinstance(item, int) and not isinstance(item, bool) and 0 < item < 2**63 for item in value
    ):
        raise ValidationError("Enter a list of Discord ids (positive 64-bit integers).")


class GuildManager(models.Manager["Guild"]):
    def create_with_settings(self, **fields: object) -> Guild:
        """A guild never exists without its settings row; callers run this inside a transaction."""
        guild = self.create(**fields)
        GuildSettings.objects.create(guild=guild)
        return guild


class Guild(models.Model):
    """A Discord server the bot has joined (or once joined: ``is_active`` is false after it leaves)."""

    discord_id = models.BigIntegerField(unique=True)
    name = models.CharField(max_length=100)
    icon = models.CharField(max_length=100, blank=True)
    owner_discord_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    shard_id = models.PositiveIntegerField(default=0, db_index=True)
    member_count = models.PositiveIntegerField(default=0)
    is_active = models.BooleanField(default=True)
    joined_at = models.DateTimeField(null=True, blank=True)
    left_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = GuildManager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.discord_id})"

    @property
    def icon_url(self) -> str:
        if self.icon:
            return f"{DISCORD_CDN}/icons/{self.discord_id}/{self.icon}.png?size=64"
        return ""

    @property
    def initials(self) -> str:
        return "".join(word[0] for word in self.name.split()[:2]).upper() or "?"


class Channel(models.Model):
    """A guild's text channel or thread, synced by the bot for the dashboard's channel picker."""

    class Kind(models.IntegerChoices):
        TEXT = 0, "Text"
        ANNOUNCEMENT = 5, "Announcement"
        ANNOUNCEMENT_THREAD = 10, "Announcement thread"
        PUBLIC_THREAD = 11, "Public thread"
        PRIVATE_THREAD = 12, "Private thread"
        FORUM = 15, "Forum"

    guild = models.ForeignKey(Guild, on_delete=models.CASCADE, related_name="channels")
    discord_id = models.BigIntegerField(unique=True)
    name = models.CharField(max_length=100)
    kind = models.PositiveSmallIntegerField(choices=Kind.choices, default=Kind.TEXT)
    parent_discord_id = models.BigIntegerField(null=True, blank=True)
    position = models.IntegerField(default=0)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return f"#{self.name}"


class GuildSettings(models.Model):
    """How Parley behaves in one guild. ``version`` grows on every save: the bot's cache and the dashboard's
    stale-form check both compare it."""

    guild = models.OneToOneField(Guild, on_delete=models.CASCADE, related_name="settings")
    enabled = models.BooleanField(default=True)
    allowed_channel_ids = models.JSONField(
        default=list, blank=True, validators=[validate_discord_ids], help_text="Empty: every channel."
    )
    target_user_ids = models.JSONField(default=list, blank=True, validators=[validate_discord_ids])
    blocked_user_ids = models.JSONField(
        default=list, blank=True, validators=[validate_discord_ids], help_text="Never answered, never told."
    )
    reply_on_mention = models.BooleanField(default=True)
    system_prompt = models.TextField(
        default=DEFAULT_SYSTEM_PROMPT, max_length=SYSTEM_PROMPT_MAX_LENGTH, blank=True
    )
    model = models.CharField(max_length=100, default=default_model)
    fallback_model = models.CharField(max_length=100, blank=True)
    temperature = models.FloatField(default=0.7, validators=[MinValueValidator(0.0), MaxValueValidator(2.0)])
    max_output_tokens = models.PositiveIntegerField(
        default=1024, validators=[MinValueValidator(16), MaxValueValidator(8192)]
    )
    history_messages = models.PositiveSmallIntegerField(
        default=10, validators=[MinValueValidator(0), MaxValueValidator(50)], help_text="Reply-chain depth"
    )
    streaming = models.BooleanField(default=True)
    reasoning_display = models.CharField(max_length=10, choices=reasoning.CHOICES, default=reasoning.HIDDEN)
    daily_budget_usd = models.DecimalField(
        max_digits=10, decimal_places=2, null=True, blank=True, validators=[MinValueValidator(Decimal("0"))]
    )
    user_messages_per_minute = models.PositiveSmallIntegerField(null=True, blank=True)
    user_messages_per_day = models.PositiveIntegerField(null=True, blank=True)
    version = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "guild settings"

    def __str__(self) -> str:
        return f"Settings of {self.guild}"

    def allows_channel(self, channel_id: int) -> bool:
        return not self.allowed_channel_ids or channel_id in self.allowed_channel_ids


COOLDOWN_MAX_SECONDS = 86400


class ChannelSettings(models.Model):
    """A per-channel override; empty fields inherit the guild's. Threads use their parent's override.

    ``mode`` is how conversations go in the channel: by the server's rules (mentions, replies, target users), every
    message answered (``cooldown_seconds`` after each answer holds back messages nobody addressed to the bot), or
    a thread per conversation (the bot opens a thread from the message that asked, answers there, and answers
    every later message in that thread).
    """

    class Mode(models.TextChoices):
        DEFAULT = "", "The server's rules"
        EVERYONE = "everyone", "Answer every message"
        THREADS = "threads", "A thread per conversation"

    guild = models.ForeignKey(Guild, on_delete=models.CASCADE, related_name="channel_settings")
    channel_id = models.BigIntegerField()
    system_prompt = models.TextField(max_length=SYSTEM_PROMPT_MAX_LENGTH, blank=True)
    model = models.CharField(max_length=100, blank=True)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.DEFAULT, blank=True)
    cooldown_seconds = models.PositiveIntegerField(
        default=0, validators=[MaxValueValidator(COOLDOWN_MAX_SECONDS)]
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["guild", "channel_id"], name="unique_channel_override")
        ]
        verbose_name_plural = "channel settings"

    def __str__(self) -> str:
        return f"Override for channel {self.channel_id}"


class RoleSettings(models.Model):
    """A Discord role's own prompt or model; empty fields inherit. Field by field, a channel's override comes first,
    then the author's roles, then the guild's settings. Someone with several such roles gets, for the prompt and for
    the model, the one of their highest role in Discord's role list that sets it (the bot reads the positions live
    from Discord, so nothing stored here goes stale)."""

    guild = models.ForeignKey(Guild, on_delete=models.CASCADE, related_name="role_settings")
    role_id = models.BigIntegerField()
    system_prompt = models.TextField(max_length=SYSTEM_PROMPT_MAX_LENGTH, blank=True)
    model = models.CharField(max_length=100, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["guild", "role_id"], name="unique_role_override")]
        ordering = ["role_id"]
        verbose_name_plural = "role settings"

    def __str__(self) -> str:
        return f"Override for role {self.role_id}"


class MembershipManager(models.Manager["Membership"]):
    def acting(self, user: Any, guild: Guild) -> Membership | None:
        """The role ``user`` acts with in ``guild`` (see ``Membership.resolve``); None: no role at all."""
        return Membership.resolve(user, guild, self.filter(user=user, guild=guild).first())


class Membership(models.Model):
    """A user's role in a guild's dashboard."""

    class Role(models.TextChoices):
        OWNER = "OWNER", "Owner"
        ADMIN = "ADMIN", "Admin"
        USER = "USER", "User"

    RANK = {Role.USER: 1, Role.ADMIN: 2, Role.OWNER: 3}

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    guild = models.ForeignKey(Guild, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=5, choices=Role.choices, default=Role.USER)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = MembershipManager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "guild"], name="unique_membership")]
        ordering = ["guild", "-role", "user"]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.guild}"

    @property
    def rank(self) -> int:
        return self.RANK[self.Role(self.role)]

    def has_role(self, role: str) -> bool:
        return self.rank >= self.RANK[self.Role(role)]

    @property
    def is_owner(self) -> bool:
        return self.role == self.Role.OWNER

    @property
    def is_admin(self) -> bool:
        """ADMIN or OWNER: they change settings and members, and see the audit log and usage."""
        return self.has_role(self.Role.ADMIN)

    # One rule today; separate names so that views and templates say what they ask.
    can_manage_settings = can_manage_members = can_view_audit = can_view_usage = is_admin
    can_inspect_answers = (
        is_admin  # the answer inspector: who asked what, where, and why the bot (not) answered
    )
    # A server's own provider keys spend its owners' money: owners set them, admins only see that they are set.
    can_manage_keys = is_owner

    def can_assign(self, role: str) -> bool:
        """Owners grant any role; admins grant up to ADMIN; nobody raises a role above their own."""
        return self.can_manage_members and self.has_role(role)

    def can_change(self, other: Membership) -> bool:
        """An admin may not touch an owner; owners may change anyone."""
        return self.can_manage_members and self.rank >= other.rank

    @classmethod
    def resolve(cls, user: Any, guild: Guild, membership: Membership | None) -> Membership | None:
        """The role ``user`` acts with in ``guild``, given their stored ``membership`` (or None).

        Operators act as owners of every guild, and the guild's Discord owner is an owner before their first
        login has stored it; both through a transient membership that is never saved. The dashboard's access
        helper and the bot's slash commands both ask this.
        """
        owner = user.is_staff or (user.discord_id is not None and user.discord_id == guild.owner_discord_id)
        if owner and (membership is None or not membership.is_owner):
            return cls(user=user, guild=guild, role=cls.Role.OWNER)
        return membership
