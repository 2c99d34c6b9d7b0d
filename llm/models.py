from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone

from llm import registry


class Usage(models.Model):
    """One LLM call: who asked, which model, tokens, cost and how it ended."""

    class Outcome(models.TextChoices):
        OK = "ok", "OK"
        TIMEOUT = "timeout", "Timeout"
        RATE_LIMITED = "rate_limited", "Provider rate limit"
        PROVIDER_ERROR = "provider_error", "Provider error"
        UNAVAILABLE = "unavailable", "Provider not configured"
        BAD_REQUEST = "bad_request", "Bad request"
        OVER_BUDGET = "over_budget", "Over budget"
        USER_LIMITED = "user_limited", "User rate limit"
        # Reserved by the limit gate before the call (holding the call's maximum cost), not finished yet.
        PENDING = "pending", "In progress"
        # The provider answered but Discord did not take the message (after our retries).
        UNDELIVERED = "undelivered", "Not delivered"
        # Cut short by a shutdown; what had arrived was shown with a notice.
        INTERRUPTED = "interrupted", "Interrupted"
        # Our database could not be reached to check the limits: nothing was called.
        UNCHECKED = "unchecked", "Limits unavailable"
        # Asked where Parley does not answer (a channel not allowed, a direct message from someone not targeted).
        DISABLED = "disabled", "Not enabled there"

    class Source(models.TextChoices):
        DISCORD = "discord", "Discord message"
        SLASH = "slash", "Slash command"
        PLAYGROUND = "playground", "Playground"
        SUMMARY = "summary", "/summarize"

    guild = models.ForeignKey(
        "guilds.Guild", on_delete=models.CASCADE, null=True, blank=True, related_name="usage"
    )
    channel_id = models.BigIntegerField(null=True, blank=True)
    user_discord_id = models.BigIntegerField(null=True, blank=True)
    model = models.CharField(max_length=100)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.DISCORD)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0, help_text="Part of output_tokens")
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal("0"))
    latency_ms = models.PositiveIntegerField(default=0)
    first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, default=Outcome.OK)
    # When it happened, set by the caller: rows are written in batches, or replayed from the journal later.
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["guild", "created_at"], name="usage_guild_time"),
            models.Index(fields=["guild", "user_discord_id", "created_at"], name="usage_guild_user_time"),
        ]

    def __str__(self) -> str:
        return f"{self.model}: {self.input_tokens}+{self.output_tokens} tokens, ${self.cost_usd}"


class ProviderKey(models.Model):
    """A server's own API key for one provider, encrypted at rest (``config.encryption``). Its calls to that
    provider use it instead of the instance's key; it is written only by ``guilds/provider_keys.py`` and marked
    refused by ``llm.keys.key_refused``. Only its last 4 characters are kept in the clear, for the page."""

    guild = models.ForeignKey("guilds.Guild", on_delete=models.CASCADE, related_name="provider_keys")
    provider = models.CharField(max_length=20)  # an llm.registry provider id: openai, anthropic, gemini, xai
    encrypted_key = models.TextField()  # a Fernet token
    last4 = models.CharField(max_length=4)
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    set_at = models.DateTimeField(default=timezone.now)
    # The provider answered 401/403 to this key: reported once (audit entry, the owner told), cleared by a new key.
    refused_at = models.DateTimeField(null=True, blank=True)
    refused_status = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["guild", "provider"], name="unique_provider_key")]

    def __str__(self) -> str:
        return f"{self.provider} key of guild {self.guild_id} ({self.masked})"

    @property
    def masked(self) -> str:
        return f"••••{self.last4}"

    @property
    def provider_label(self) -> str:
        return registry.provider_label(self.provider)
