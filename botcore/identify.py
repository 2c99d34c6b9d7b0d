"""IDENTIFY pacing shared by every ``runbot`` process of the bot.

Discord accepts ``max_concurrency`` IDENTIFYs per 5 s for the whole bot, one in each bucket (``shard_id %
max_concurrency``): one sooner gets an invalid session, and more than 1,000 in a day resets the token. Processes
that pace themselves each on their own collide, so the pace is kept in the database (``IdentifySlot``, one row
per bucket), which every process already shares, SQLite on one host as PostgreSQL on many.
"""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime

from asgiref.sync import sync_to_async
from django.db import DatabaseError
from django.db.models.functions import Now

from botcore.leases import HOST, db_now_plus
from botcore.models import IdentifySlot

logger = logging.getLogger(__name__)

# Discord measures when an IDENTIFY arrives; it leaves here a database round trip (and maybe a busy event loop's
# wait) after the slot is taken, so consecutive slots are kept this much further apart than the limit.
IDENTIFY_MARGIN = 0.5
_LONG_AGO = datetime(2015, 1, 1, tzinfo=UTC)


def identify_slot_take(*, bucket: int, spacing: float, shard_id: int | None) -> float:
    """Take the bucket's IDENTIFY slot: 0.0 when this process may IDENTIFY now, else the seconds until the slot
    frees up (another process, or this one, took it less than ``spacing`` seconds ago)."""
    for _ in range(2):
        taken = IdentifySlot.objects.filter(bucket=bucket, next_at__lte=Now()).update(
            next_at=db_now_plus(spacing), shard_id=shard_id, host=HOST, pid=os.getpid()
        )
        if taken:
            return 0.0
        row = (
            IdentifySlot.objects.filter(bucket=bucket)
            .annotate(now=Now())
            .values_list("next_at", "now")
            .first()
        )
        if row is not None:
            return max((row[0] - row[1]).total_seconds(), 0.01)
        # The bucket's first IDENTIFY ever: a process that loses this race finds the row on the next try.
        IdentifySlot.objects.bulk_create(
            [IdentifySlot(bucket=bucket, next_at=_LONG_AGO)], ignore_conflicts=True
        )
    return 0.01


class IdentifyGate:
    """Waits for the shared IDENTIFY slot of a shard's bucket (``ParleyBot.before_identify_hook``).

    ``spacing`` 0 turns pacing off (tests against a fake Discord that allows it).
    """

    def __init__(self, spacing: float, max_concurrency: int = 1) -> None:
        self.spacing = spacing
        self.max_concurrency = max(max_concurrency, 1)

    def bucket(self, shard_id: int | None) -> int:
        return (shard_id or 0) % self.max_concurrency

    async def wait(self, shard_id: int | None) -> None:
        if self.spacing <= 0:
            return
        spacing = self.spacing + IDENTIFY_MARGIN
        bucket = self.bucket(shard_id)
        while True:
            try:
                delay = await sync_to_async(identify_slot_take)(
                    bucket=bucket, spacing=spacing, shard_id=shard_id
                )
            except DatabaseError as exc:
                # Better a possible invalid session (discord.py identifies again) than no gateway at all.
                logger.warning(
                    "identify slot unreadable (%s): shard %s waits %.1f s on its own", type(exc).__name__,
                    shard_id, spacing,
                )  # fmt: skip
                await asyncio.sleep(spacing)
                return
            if delay <= 0:
                logger.info("shard %s may identify (bucket %d of %d)", shard_id, bucket, self.max_concurrency)
                return
            await asyncio.sleep(min(delay, spacing))
