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
CHANNEL_FIELDS = ["guild_id", "name", "kind", "parent_discord_id", "position"]


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
    """Insert or update guilds (with their settings, channels and owner memberships, following an ownership
    transfer). Returns the ids of the guilds that joined: new ones and ones that had been left."""
    joined: list[int] = []
    for batch in _batches(snapshots):
        joined.extend(_upsert_batch(batch, audit_joins=audit_joins))
    return joined


@transaction.atomic
def _upsert_batch(batch: Sequence[GuildSnapshot], *, audit_joins: bool) -> list[int]:
    ids = [snap.discord_id for snap in batch]
    stored = {
        row[0]: row[1:]
        for row in Guild.objects.filter(discord_id__in=ids).values_list("discord_id", "pk", *GUILD_FIELDS)
    }
    previously_active = {
        discord_id: row[GUILD_FIELDS.index("is_active") + 1] for discord_id, row in stored.items()
    }
    owner_at = GUILD_FIELDS.index("owner_discord_id") + 1
    stored_owners = {discord_id: row[owner_at] for discord_id, row in stored.items() if row[owner_at]}
    accounts = _accounts([*(snap.owner_discord_id for snap in batch), *stored_owners.values()])
    owners = {snap.discord_id: _owner(snap, stored_owners.get(snap.discord_id), accounts) for snap in batch}
    now = timezone.now()
    rows = [
        Guild(
            discord_id=snap.discord_id,
            name=snap.name[:100],
            icon=snap.icon or "",
            owner_discord_id=owners[snap.discord_id],
            shard_id=snap.shard_id,
            member_count=snap.member_count,
            is_active=True,
            joined_at=snap.joined_at or now,
            left_at=None,
        )
        for snap in batch
    ]
    # A restart finds most guilds as they were: only new and changed rows are written.
    changed = [
        row
        for row in rows
        if row.discord_id not in stored
        or stored[row.discord_id][1:] != tuple(getattr(row, name) for name in GUILD_FIELDS)
    ]
    if changed:
        Guild.objects.bulk_create(
            changed, update_conflicts=True, unique_fields=["discord_id"], update_fields=GUILD_FIELDS
        )
    pks = {discord_id: row[0] for discord_id, row in stored.items()}
    if len(pks) < len(ids):
        missing = [discord_id for discord_id in ids if discord_id not in pks]
        pks |= dict(Guild.objects.filter(discord_id__in=missing).values_list("discord_id", "pk"))
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
    _sync_owners(owners, stored_owners, accounts, pks)
    if audit_joins and joined:
        audit.record_many(
            [
                {"action": "guild.join", "guild_id": pks[discord_id], "actor_label": AuditLog.ActorKind.BOT}
                for discord_id in joined
            ]
        )
    return joined


def _sync_channels(batch: Sequence[GuildSnapshot], pks: dict[int, int]) -> None:
    """The batch's channels as the gateway has them: new and changed ones written, vanished ones deleted."""
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
    stored = {
        row[0]: row[1:]
        for row in Channel.objects.filter(guild_id__in=pks.values()).values_list(
            "discord_id", *CHANNEL_FIELDS
        )
    }
    changed = [
        c for c in channels if stored.get(c.discord_id) != tuple(getattr(c, name) for name in CHANNEL_FIELDS)
    ]
    if changed:
        Channel.objects.bulk_create(
            changed, update_conflicts=True, unique_fields=["discord_id"], update_fields=CHANNEL_FIELDS
        )
    gone = set(stored) - {c.discord_id for c in channels}
    if gone:
        Channel.objects.filter(discord_id__in=gone).delete()


def _accounts(discord_ids: Iterable[int | None]) -> dict[int, int]:
    """``{discord id: user pk}`` of those who have a Parley account."""
    wanted = {discord_id for discord_id in discord_ids if discord_id}
    if not wanted:
        return {}
    users = User.objects.filter(discord_id__in=wanted).values_list("discord_id", "pk")
    return {discord_id: pk for discord_id, pk in users if discord_id}


def _owner(snap: GuildSnapshot, stored: int | None, accounts: dict[int, int]) -> int | None:
    """The owner id to store. When ownership moved to someone without a Parley account yet, the previous owner
    keeps it (and their OWNER role) so the guild is never left without an owner; the first sync after the new
    owner's first login hands it over."""
    if (
        stored
        and snap.owner_discord_id != stored
        and snap.owner_discord_id not in accounts
        and stored in accounts
    ):
        return stored
    return snap.owner_discord_id


def _sync_owners(
    owners: dict[int, int | None], stored: dict[int, int], accounts: dict[int, int], pks: dict[int, int]
) -> None:
    """A guild's Discord owner who has a Parley account is its OWNER in the dashboard. When ownership moved, the
    previous owner's OWNER role (which came from owning the guild) is lowered to ADMIN."""
    wanted = {pks[guild]: accounts[owner] for guild, owner in owners.items() if owner in accounts}
    previous = {
        pks[guild]: accounts[stored[guild]]
        for guild, owner in owners.items()
        if stored.get(guild) in accounts and stored[guild] != owner
    }
    if not wanted and not previous:
        return
    memberships = {
        (m.guild_id, m.user_id): m
        for m in Membership.objects.filter(
            guild_id__in=[*wanted, *previous], user_id__in=[*wanted.values(), *previous.values()]
        )
    }
    new = [(guild, user) for guild, user in sorted(wanted.items()) if (guild, user) not in memberships]
    raised = [
        memberships[key] for key in wanted.items() if key in memberships and not memberships[key].is_owner
    ]
    lowered = [
        memberships[key] for key in previous.items() if key in memberships and memberships[key].is_owner
    ]
    Membership.objects.bulk_create(
        [Membership(user_id=user, guild_id=guild, role=Membership.Role.OWNER) for guild, user in new],
        ignore_conflicts=True,
    )
    if raised:
        Membership.objects.filter(pk__in=[m.pk for m in raised]).update(role=Membership.Role.OWNER)
    if lowered:
        Membership.objects.filter(pk__in=[m.pk for m in lowered]).update(role=Membership.Role.ADMIN)
    discord_ids = {pk: discord_id for discord_id, pk in accounts.items()}

    def entry(action: str, guild: int, user: int, before: str | None, after: str) -> dict[str, object]:
        return {
            "action": action,
            "guild_id": guild,
            "actor_label": AuditLog.ActorKind.BOT,
            "target": f"user:{discord_ids[user]}",
            "changes": {"role": [before, after]},
        }

    audit.record_many(
        [entry("member.add", guild, user, None, Membership.Role.OWNER) for guild, user in new]
        + [entry("member.role_change", m.guild_id, m.user_id, m.role, Membership.Role.OWNER) for m in raised]
        + [entry("member.role_change", m.guild_id, m.user_id, m.role, Membership.Role.ADMIN) for m in lowered]
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
