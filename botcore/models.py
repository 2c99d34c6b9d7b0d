from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.db import models
from django.utils import timezone

# A row not refreshed for this long belongs to a process that died without saying so.
STALE_AFTER = timedelta(minutes=1)


class ShardStatus(models.Model):
    """The state of one gateway shard, written by the ``runbot`` process that runs it."""

    class Status(models.TextChoices):
        CONNECTING = "CONNECTING", "Connecting"
        READY = "READY", "Ready"
        RESUMING = "RESUMING", "Resuming"
        DISCONNECTED = "DISCONNECTED", "Disconnected"

    shard_id = models.PositiveIntegerField(unique=True)
    shard_count = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.CONNECTING)
    latency_ms = models.FloatField(null=True, blank=True)
    guild_count = models.PositiveIntegerField(default=0)
    pid = models.PositiveIntegerField(null=True, blank=True)
    host = models.CharField(max_length=255, blank=True)
    connect_count = models.PositiveIntegerField(default=0)
    resume_count = models.PositiveIntegerField(default=0)
    last_heartbeat = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["shard_id"]
        verbose_name_plural = "shard statuses"

    def __str__(self) -> str:
        return f"Shard {self.shard_id}: {self.effective_status}"

    @property
    def is_stale(self) -> bool:
        return timezone.now() - self.updated_at > STALE_AFTER

    @property
    def effective_status(self) -> str:
        return self.Status.DISCONNECTED if self.is_stale else self.status


class ShardLatencySample(models.Model):
    """Latency history for the status page's sparkline; the bot keeps the last hour."""

    shard_id = models.PositiveIntegerField()
    latency_ms = models.FloatField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["shard_id", "created_at"], name="latency_shard_time")]

    def __str__(self) -> str:
        return f"Shard {self.shard_id}: {self.latency_ms:.0f} ms"


class ShardLease(models.Model):
    """One gateway shard under ``runbot --shards auto``: the process running it, and until when it may.

    A process renews its leases every few seconds; a lease not renewed by ``expires_at`` (the process died or lost
    the database) is free for another process to claim. Times are the database's clock, so hosts need not agree.
    """

    shard_id = models.PositiveIntegerField(unique=True)
    shard_count = models.PositiveIntegerField()
    owner = models.CharField(max_length=100, blank=True, db_index=True)  # ShardProcess.token; "" when free
    host = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    acquired_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["shard_id"]

    def __str__(self) -> str:
        return f"Shard {self.shard_id}/{self.shard_count}: {self.owner or 'free'}"


class ShardProcess(models.Model):
    """A live ``runbot --shards auto`` process. Each claims ceil(shards / live processes), so processes that hold
    no shard yet (just started) count too."""

    token = models.CharField(max_length=100, unique=True)
    host = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name_plural = "shard processes"

    def __str__(self) -> str:
        return self.token


class IdentifySlot(models.Model):
    """Discord's IDENTIFY limit for one ``max_concurrency`` bucket (``shard_id % max_concurrency``), shared by every
    process of the bot: whoever moves ``next_at`` forward from the past may IDENTIFY now."""

    bucket = models.PositiveIntegerField(unique=True)
    next_at = models.DateTimeField()
    shard_id = models.PositiveIntegerField(null=True, blank=True)  # who took the last slot, for the admin
    host = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Identify bucket {self.bucket}"


class TriggerDecision(models.Model):
    """What the bot decided about one message of a server, and why: the answer inspector's rows.

    Written by the chat cog in batches (``botcore/decisions.py``), at most ``decisions.KEEP`` a guild. Which
    messages get a row: every message the bot answered or tried to, and of those it ignored, the ones someone may
    have meant for it (``decisions.noteworthy``). The text only with ``LOG_MESSAGE_CONTENT``."""

    class Reason(models.TextChoices):
        ANSWERED = "answered", "Answered"
        FAILED = "failed", "Failed"
        LIMIT = "limit", "Limit reached"
        DISABLED = "disabled", "Parley disabled"
        CHANNEL = "channel", "Not an allowed channel"
        BLOCKED = "blocked", "Blocked user"
        NOT_ADDRESSED = "not_addressed", "Not addressed to the bot"
        MENTIONS_OFF = "mentions_off", "Mentions are off"
        COOLDOWN = "cooldown", "Cooldown"
        DATABASE = "database", "Database down"
        RESTARTING = "restarting", "Bot restarting"

    guild = models.ForeignKey("guilds.Guild", on_delete=models.CASCADE, related_name="trigger_decisions")
    message_id = models.BigIntegerField()
    channel_id = models.BigIntegerField()  # where the message is (a thread's own id, for the jump link)
    author_id = models.BigIntegerField()
    reason = models.CharField(max_length=20, choices=Reason.choices)
    trigger = models.CharField(max_length=10, blank=True)  # why it was answered: target, reply, mention...
    usage_outcome = models.CharField(max_length=20, blank=True)  # llm.models.Usage.Outcome, when asked
    model = models.CharField(max_length=100, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal("0"))
    content = models.TextField(blank=True)  # only with LOG_MESSAGE_CONTENT
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["guild", "-id"], name="decision_guild_newest")]

    def __str__(self) -> str:
        return f"message {self.message_id}: {self.get_reason_display()}"

    @property
    def jump_url(self) -> str:
        return f"https://discord.com/channels/{self.guild.discord_id}/{self.channel_id}/{self.message_id}"
