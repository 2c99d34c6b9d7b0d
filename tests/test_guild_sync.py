"""Guild sync follows Discord's ownership: a transfer makes the new owner OWNER and lowers the previous owner's
OWNER role (which came from owning the guild) to ADMIN, audited as the bot; never a guild without an owner."""

from __future__ import annotations

from accounts.models import User
from audit.models import AuditLog
from botcore.sync import GuildSnapshot, guilds_upsert
from guilds.models import Guild, Membership

Role = Membership.Role


def sync(guild: Guild, owner: int) -> None:
    """What on_guild_update and the start-up sync do: upsert the guild as Discord describes it now."""
    guilds_upsert([GuildSnapshot(discord_id=guild.discord_id, name=guild.name, owner_discord_id=owner)])
    guild.refresh_from_db()


def roles(guild: Guild) -> dict[str, str]:
    return dict(Membership.objects.filter(guild=guild).values_list("user__username", "role"))


def role_changes(guild: Guild) -> list[tuple[str, str, list[str | None]]]:
    entries = AuditLog.objects.filter(guild=guild, action__startswith="member.").order_by("id")
    return [(e.action, e.target, e.changes["role"]) for e in entries if e.actor_label == "bot"]


def test_a_new_owner_syncs_as_owner(guild, alice):
    erin = User.objects.create_user(username="erin", discord_id=1005)
    sync(guild, owner=1005)
    assert roles(guild) == {"alice": Role.ADMIN, "erin": Role.OWNER}
    assert guild.owner_discord_id == 1005
    assert role_changes(guild) == [
        ("member.add", "user:1005", [None, Role.OWNER]),
        ("member.role_change", "user:1001", [Role.OWNER, Role.ADMIN]),
    ]
    assert Membership.objects.acting(erin, guild).role == Role.OWNER
    assert Membership.objects.acting(alice, guild).role == Role.ADMIN


def test_a_member_who_becomes_owner_is_raised(guild, alice, carol):
    sync(guild, owner=1003)
    assert roles(guild) == {"alice": Role.ADMIN, "carol": Role.OWNER}
    assert role_changes(guild) == [
        ("member.role_change", "user:1003", [Role.USER, Role.OWNER]),
        ("member.role_change", "user:1001", [Role.OWNER, Role.ADMIN]),
    ]


def test_the_previous_owner_stays_until_the_new_one_has_an_account(guild, alice):
    sync(guild, owner=1009)  # nobody with Discord id 1009 has logged in yet
    assert roles(guild) == {"alice": Role.OWNER}
    assert guild.owner_discord_id == 1001 and role_changes(guild) == []
    User.objects.create_user(username="frank", discord_id=1009)  # frank logs in
    sync(guild, owner=1009)  # the next sync hands over
    assert roles(guild) == {"alice": Role.ADMIN, "frank": Role.OWNER}
    assert guild.owner_discord_id == 1009


def test_an_unchanged_owner_changes_nothing(guild, alice, bob):
    sync(guild, owner=1001)
    sync(guild, owner=1001)
    assert roles(guild) == {"alice": Role.OWNER, "bob": Role.ADMIN}
    assert role_changes(guild) == []


def test_a_transfer_from_an_owner_without_account_just_moves_the_id(guild, bob):
    """Nobody held OWNER from the previous owner (no account): the id moves, bob keeps his role."""
    guild.owner_discord_id = 1099
    guild.save()
    sync(guild, owner=1002)
    assert guild.owner_discord_id == 1002
    assert roles(guild) == {"bob": Role.OWNER}


def test_the_start_up_sync_follows_transfers_in_bulk(db):
    users = [User.objects.create_user(username=f"u{i}", discord_id=2000 + i) for i in range(4)]
    guilds = [
        Guild.objects.create_with_settings(discord_id=3000 + i, name=f"g{i}", owner_discord_id=2000 + i)
        for i in range(2)
    ]
    for guild, user in zip(guilds, users, strict=False):
        Membership.objects.create(guild=guild, user=user, role=Role.OWNER)
    guilds_upsert(
        [
            GuildSnapshot(discord_id=3000, name="g0", owner_discord_id=2002),
            GuildSnapshot(discord_id=3001, name="g1", owner_discord_id=2003),
        ]
    )
    assert roles(guilds[0]) == {"u0": Role.ADMIN, "u2": Role.OWNER}
    assert roles(guilds[1]) == {"u1": Role.ADMIN, "u3": Role.OWNER}


def test_a_restart_writes_only_what_changed(db):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from botcore.sync import ChannelSnapshot
    from guilds.models import Channel

    def snapshots(name: str = "general") -> list[GuildSnapshot]:
        return [
            GuildSnapshot(
                discord_id=9000 + i,
                name=f"Guild {i}",
                member_count=10,
                channels=(
                    ChannelSnapshot(90000 + 10 * i, name, 0),
                    ChannelSnapshot(90001 + 10 * i, "random", 0),
                ),
            )
            for i in range(3)
        ]

    assert len(guilds_upsert(snapshots())) == 3  # the first start: all new

    with CaptureQueriesContext(connection) as unchanged:
        assert guilds_upsert(snapshots()) == []
    writes = [
        q["sql"]
        for q in unchanged
        if not q["sql"].lstrip().upper().startswith(("SELECT", "SAVEPOINT", "RELEASE"))
    ]
    assert writes == [], "nothing changed, nothing written"

    changed = snapshots("chat")
    changed[0] = GuildSnapshot(
        discord_id=9000, name="Renamed", member_count=10, channels=changed[0].channels[:1]
    )
    guilds_upsert(changed)
    assert Guild.objects.get(discord_id=9000).name == "Renamed"
    assert sorted(Channel.objects.filter(guild__discord_id=9000).values_list("name", flat=True)) == ["chat"]
    assert (
        Channel.objects.filter(name="chat").count() == 3
        and Channel.objects.filter(name="general").count() == 0
    )
