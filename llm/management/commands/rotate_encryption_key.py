"""``manage.py rotate_encryption_key``: re-encrypt every stored server key under the first key of
PARLEY_ENCRYPTION_KEY, so that the older keys after it can be dropped."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from config import encryption
from llm.models import ProviderKey


class Command(BaseCommand):
    help = (
        "Re-encrypt every server's stored provider keys under the first key of PARLEY_ENCRYPTION_KEY. To change "
        "keys: put the new one first (PARLEY_ENCRYPTION_KEY=new,old), run this, then remove the old one. Stops "
        "without changing anything when a stored key opens with none of the configured keys."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if not encryption.configured():
            raise CommandError(
                "PARLEY_ENCRYPTION_KEY is not set: put the new key first and the old one after it, "
                f"comma-separated. Generate a key with: {encryption.GENERATE_COMMAND}"
            )
        with transaction.atomic():
            rows = list(ProviderKey.objects.select_for_update().select_related("guild").order_by("pk"))
            unreadable = []
            for row in rows:
                try:
                    row.encrypted_key = encryption.rotate(row.encrypted_key)
                except encryption.CannotDecrypt:
                    unreadable.append(f"{row.provider} key of guild {row.guild.discord_id}")
            if unreadable:
                raise CommandError(
                    f"{len(unreadable)} stored key(s) open with none of the configured keys "
                    f"({', '.join(unreadable)}); nothing was changed. Add the key that encrypted them to "
                    "PARLEY_ENCRYPTION_KEY, after the new one."
                )
            ProviderKey.objects.bulk_update(rows, ["encrypted_key"])
        self.stdout.write(
            f"OK: {len(rows)} server key(s) now encrypted with the first key of PARLEY_ENCRYPTION_KEY"
        )
