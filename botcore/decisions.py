"""The answer inspector's rows: what the chat cog decided about a message, and why (``TriggerDecision``).

Recording must stay cheap on a busy server, so the cog only appends to an in-memory buffer on the event loop; a
background task writes the buffer in one batch every ``BOT_USAGE_FLUSH_SECONDS`` (like ``llm.usage``'s rows) and,
in the same transaction, prunes each guild it touched to its newest ``KEEP`` rows (two queries a guild).

Which messages get a row (``noteworthy``): every message the bot answered, or meant to (a refusal, a failure,
the database down, a restart), and of those it ignored, the ones someone may have meant for it: a mention or a
reply to the bot, a message from a target user, or a message in a channel the server named (its allow list, or a
channel override with a conversation mode). Ordinary chatter elsewhere is not recorded: it is most of a server's
traffic, and nobody asks why the bot did not answer it.

Unlike usage rows, decisions are diagnostics, not accounting: while the database is away they wait in memory up to
``MAX_PENDING`` rows (the oldest dropped first), with no journal.
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DataError, IntegrityError, transaction

from botcore.models import TriggerDecision
from config.probes import database_outage
from guilds.effective import SettingsSnapshot
from guilds.models import ChannelSettings, Guild
from llm.answering import Outcome

logger = logging.getLogger(__name__)
Reason = TriggerDecision.Reason
KEEP = 500  # rows a guild keeps: the newest
MAX_PENDING = 5000  # rows held in memory while the database is away


def noteworthy(
    snapshot: SettingsSnapshot, *, author_id: int, channel_id: int, mentioned: bool, reply_to_bot: bool
) -> bool:
    """Whether an ignored message gets a row (see the module docstring). ``channel_id`` is ``channel_key``'s."""
    if mentioned or reply_to_bot or snapshot.is_target(author_id):
        return True
    if channel_id in snapshot.row.allowed_channel_ids:
        return True
    override = snapshot.override(channel_id)
    return override is not None and override.mode != ChannelSettings.Mode.DEFAULT


def ignored_because(
    snapshot: SettingsSnapshot, *, author_id: int, channel_id: int, mentioned: bool, reply_to_bot: bool
) -> str:
    """Why ``trigger_for`` said no to a guild message, in the order it checks."""
    if not snapshot.enabled:
        return Reason.DISABLED
    if not snapshot.allows_channel(channel_id):
        return Reason.CHANNEL
    if snapshot.is_blocked(author_id):
        return Reason.BLOCKED
    override = snapshot.override(channel_id)
    if override is not None and override.mode == ChannelSettings.Mode.EVERYONE:
        return Reason.COOLDOWN  # a channel that answers every message said no: its cooldown was running
    if mentioned and not snapshot.reply_on_mention:
        return Reason.MENTIONS_OFF
    return Reason.NOT_ADDRESSED


def outcome_fields(outcome: Outcome) -> dict[str, Any]:
    """An answer's end as a row's columns: the usage outcome, model, tokens, latency and cost."""
    if outcome.reply is not None:
        reply = outcome.reply
        return {
            "reason": Reason.ANSWERED,
            "usage_outcome": outcome.usage_outcome,
            "model": reply.model,
            "input_tokens": reply.input_tokens,
            "output_tokens": reply.output_tokens,
            "latency_ms": reply.latency_ms,
            "cost_usd": reply.cost_usd,
        }
    fields: dict[str, Any] = {
        "reason": Reason.LIMIT if outcome.status == "refused" else Reason.FAILED,
        "usage_outcome": outcome.usage_outcome,
    }
    if outcome.error is not None:
        fields |= {"model": outcome.error.model or "", "latency_ms": outcome.error.latency_ms or 0}
    return fields


def decision_fields(message: Any, *, reason: str, trigger: str = "", **more: Any) -> dict[str, Any]:
    """A row's columns for a ``discord.Message`` of a guild; its text only with ``LOG_MESSAGE_CONTENT``."""
    return {
        "guild_discord_id": message.guild.id,
        "message_id": message.id,
        "channel_id": message.channel.id,
        "author_id": message.author.id,
        "reason": reason,
        "trigger": trigger,
        "content": message.content if settings.LOG_MESSAGE_CONTENT else "",
        **more,
    }


def decisions_write(rows: list[dict[str, Any]]) -> int:
    """Write a batch (rows name their guild by Discord id) and keep each guild it touched to its newest ``KEEP``
    rows. Rows of a guild the database does not know are dropped. Returns how many were written."""
    pks = dict(
        Guild.objects.filter(discord_id__in={row["guild_discord_id"] for row in rows}).values_list(
            "discord_id", "pk"
        )
    )
    decisions = [
        TriggerDecision(guild_id=pks[row["guild_discord_id"]], **_columns(row))
        for row in rows
        if row["guild_discord_id"] in pks
    ]
    with transaction.atomic():
        TriggerDecision.objects.bulk_create(decisions)
        for guild_pk in {d.guild_id for d in decisions}:
            newest = TriggerDecision.objects.filter(guild_id=guild_pk).order_by("-id")
            oldest_kept = newest.values_list("id", flat=True)[KEEP - 1 : KEEP].first()
            if oldest_kept is not None:
                TriggerDecision.objects.filter(guild_id=guild_pk, id__lt=oldest_kept).delete()
    return len(decisions)


def _columns(row: dict[str, Any]) -> dict[str, Any]:
    fields = {k: v for k, v in row.items() if k != "guild_discord_id"}
    fields["cost_usd"] = fields.get("cost_usd") or Decimal(0)
    return fields


class _DecisionBuffer:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.task: asyncio.Task[None] | None = None

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        del self.rows[:-MAX_PENDING]
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self.rows:
            await asyncio.sleep(settings.BOT_USAGE_FLUSH_SECONDS)
            await self.flush()

    async def flush(self) -> None:
        rows, self.rows = self.rows, []
        if not rows:
            return
        try:
            if database_outage.active:
                raise ConnectionError("the database failed moments ago")
            await sync_to_async(decisions_write)(rows)
        except (DataError, IntegrityError) as exc:  # not an outage: a value the database refuses
            logger.error("decisions: a batch of %d rows was refused (%s) and dropped", len(rows), exc)
        except Exception as exc:
            logger.warning("decisions: %d rows not written yet (%s)", len(rows), type(exc).__name__)
            self.rows[:0] = rows
            del self.rows[:-MAX_PENDING]


_buffer = _DecisionBuffer()


def decision_record_later(row: dict[str, Any]) -> None:
    """Queue a row built by ``decision_fields``; written within ``BOT_USAGE_FLUSH_SECONDS``. Never waits."""
    _buffer.add(row)


async def decisions_flush() -> None:
    """Write the queued rows now (shutdown, tests)."""
    await _buffer.flush()
