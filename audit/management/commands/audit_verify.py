"""``manage.py audit_verify``: walk the audit log's hash chain in id order and name the first broken link."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit import chain
from audit.models import AuditLog

CHUNK = 2000


class Command(BaseCommand):
    help = (
        "Check the audit log's hash chain: prints 'OK: N entries' (exit 0), or the first entry whose content does "
        "not match its hash or whose link to the entry before it is broken (exit 1)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        prev, count = chain.GENESIS, 0
        # Streams the whole table in id order (a server-side cursor on PostgreSQL), CHUNK rows in memory at most.
        for entry in AuditLog.objects.order_by("id").iterator(chunk_size=CHUNK):
            if entry.prev_hash != prev:
                raise CommandError(f"chain broken before #{entry.pk}: it does not follow the entry before it")
            if entry.content_hash() != entry.hash:
                raise CommandError(f"entry #{entry.pk}: content does not match its hash")
            prev, count = entry.hash, count + 1
        # The newest hash, to note down elsewhere: the chain alone cannot show its newest entries were cut off.
        self.stdout.write(f"OK: {count} entries" + (f", newest hash {prev}" if count else ""))
