"""Guild sync: the bot's view of its guilds written to the database in bulk.

The cog turns discord.py objects into ``GuildSnapshot`` values and calls these functions through
``sync_to_async``. Start-up with thousands of guilds costs a fixed handful of queries per batch, not one per guild.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.utils import timezone

import audit
from accounts.models import User
from audit.models import AuditLog
from guilds.models import Channel, Guild, GuildSettings, Membership

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
# Channel kinds the dashboard lets an admin pick: text, announcement, threads and forums.
SYNCED_CHANNEL_KINDS = {0, 5, 10, 11, 12, 15}
GUILD_FIELDS = ["name", "icon", "owner_discord_id", "shard_id", "member_count", "is_active", "left_at"]


@dataclass(frozen=True)
class ChannelSnapshot:
    discord_id: int
    name: str
    kind: int
    parent_discord_id: int | None = None
    position: int = 0


@dataclass(frozen=True)
class GuildSnapshot:
    discord_id: int
    name: str
    icon: str = ""
    owner_discord_id: int | None = None
    shard_id: int = 0
    member_count: int = 0
    joined_at: datetime | None = None
    channels: Sequence[ChannelSnapshot] = field(default_factory=tuple)


def _batches(items: Sequence[GuildSnapshot]) -> Iterable[Sequence[GuildSnapshot]]:
    for start in range(0, len(items), BATCH_SIZE):
        yield items[start : start + BATCH_SIZE]


def guilds_upsert(snapshots: Sequence[GuildSnapshot], *, audit_joins: bool = True) -> list[int]:
    """Insert or update guilds (with their settings, channels and owner memberships). Returns the ids of the
    guilds that joined: new ones and ones that had been left."""
    joined: list[int] = []
    for batch in _batches(snapshots):
        joined.extend(_upsert_batch(batch, audit_joins=audit_joins))
    return joined


@transaction.atomic
def _upsert_batch(batch: Sequence[GuildSnapshot], *, audit_joins: bool) -> list[int]:
    ids = [snap.discord_id for snap in batch]
    previously_active = dict(Guild.objects.filter(discord_id__in=ids).values_list("discord_id", "is_active"))
    now = timezone.now()
    Guild.objects.bulk_create(
        [
            Guild(
                discord_id=snap.discord_id,
                name=snap.name[:100],
                icon=snap.icon or "",
                owner_discord_id=snap.owner_discord_id,
                shard_id=snap.shard_id,
                member_count=snap.member_count,
                is_active=True,
                joined_at=snap.joined_at or now,
                left_at=None,
            )
            for snap in batch
        ],
        update_conflicts=True,
        unique_fields=["discord_id"],
        update_fields=GUILD_FIELDS,
    )
    pks = dict(Guild.objects.filter(discord_id__in=ids).values_list("discord_id", "pk"))
    GuildSettings.objects.bulk_create(
        [
            GuildSettings(guild_id=pks[discord_id])
            for discord_id in ids
            if discord_id not in previously_active
        ],
        ignore_conflicts=True,
    )
    # Joining again after a leave counts as a join: settings were kept and are used again.
    joined = [discord_id for discord_id in ids if not previously_active.get(discord_id, False)]
    Guild.objects.filter(discord_id__in=[d for d in joined if d in previously_active]).update(joined_at=now)
    _sync_channels(batch, pks)
    _grant_owners(batch, pks)
    if audit_joins and joined:
        audit.record_many(
            [
                {"action": "guild.join", "guild_id": pks[discord_id], "actor_label": AuditLog.ActorKind.BOT}
                for discord_id in joined
            ]
        )
    return joined


def _sync_channels(batch: Sequence[GuildSnapshot], pks: dict[int, int]) -> None:
    channels = [
        Channel(
            guild_id=pks[snap.discord_id],
            discord_id=channel.discord_id,
            name=channel.name[:100],
            kind=channel.kind,
            parent_discord_id=channel.parent_discord_id,
            position=channel.position,
        )
        for snap in batch
        for channel in snap.channels
        if channel.kind in SYNCED_CHANNEL_KINDS
    ]
    if channels:
        Channel.objects.bulk_create(
            channels,
            update_conflicts=True,
            unique_fields=["discord_id"],
            update_fields=["guild", "name", "kind", "parent_discord_id", "position"],
        )
    Channel.objects.filter(guild_id__in=pks.values()).exclude(
        discord_id__in=[c.discord_id for c in channels]
    ).delete()


def _grant_owners(batch: Sequence[GuildSnapshot], pks: dict[int, int]) -> None:
    """A guild's owner who already has a Parley account becomes its OWNER in the dashboard."""
    owners = {snap.owner_discord_id: snap.discord_id for snap in batch if snap.owner_discord_id}
    if not owners:
        return
    users = dict(User.objects.filter(discord_id__in=owners).values_list("discord_id", "pk"))
    wanted = {(users[owner], pks[guild]) for owner, guild in owners.items() if owner in users}
    if not wanted:
        return
    existing = set(
        Membership.objects.filter(
            user_id__in=[u for u, _ in wanted], guild_id__in=[g for _, g in wanted]
        ).values_list("user_id", "guild_id")
    )
    new = sorted(wanted - existing)
    Membership.objects.bulk_create(
        [Membership(user_id=user, guild_id=guild, role=Membership.Role.OWNER) for user, guild in new],
        ignore_conflicts=True,
    )
    audit.record_many(
        [
            {
                "action": "member.add",
                "guild_id": guild,
                "actor_label": AuditLog.ActorKind.BOT,
                "target": f"user:{user}",
                "changes": {"role": [None, Membership.Role.OWNER]},
            }
            for user, guild in new
        ]
    )


@transaction.atomic
def guild_leave(discord_id: int) -> bool:
    """Mark a guild inactive (its settings are kept for when the bot comes back). True if it was active."""
    guild = Guild.objects.select_for_update().filter(discord_id=discord_id, is_active=True).first()
    if guild is None:
        return False
    guild.is_active = False
    guild.left_at = timezone.now()
    guild.save(update_fields=["is_active", "left_at", "updated_at"])
    audit.record(action="guild.leave", guild=guild, actor_label=AuditLog.ActorKind.BOT)
    return True


def guilds_reconcile(*, shard_ids: Sequence[int], shard_count: int, present: set[int]) -> list[int]:
    """After READY: guilds of these shards still marked active but no longer present were left while the bot
    was offline."""
    active = Guild.objects.filter(is_active=True).values_list("discord_id", flat=True)
    gone = [gid for gid in active if (gid >> 22) % shard_count in shard_ids and gid not in present]
    return [gid for gid in gone if guild_leave(gid)]
