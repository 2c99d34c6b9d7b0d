"""Role logic lives on Membership; every role is checked."""

from __future__ import annotations

import pytest
from django.db import IntegrityError

from guilds.models import Guild, GuildSettings, Membership

Role = Membership.Role


@pytest.mark.parametrize(
    ("role", "settings", "members", "audit_", "usage"),
    [
        (Role.OWNER, True, True, True, True),
        (Role.ADMIN, True, True, True, True),
        (Role.USER, False, False, False, False),
    ],
)
def test_permission_properties(role, settings, members, audit_, usage):
    membership = Membership(role=role)
    assert membership.can_manage_settings is settings
    assert membership.can_manage_members is members
    assert membership.can_view_audit is audit_
    assert membership.can_view_usage is usage


@pytest.mark.parametrize(
    ("actor", "target_role", "allowed"),
    [
        (Role.OWNER, Role.OWNER, True),
        (Role.OWNER, Role.ADMIN, True),
        (Role.OWNER, Role.USER, True),
        (Role.ADMIN, Role.OWNER, False),
        (Role.ADMIN, Role.ADMIN, True),
        (Role.ADMIN, Role.USER, True),
        (Role.USER, Role.USER, False),
        (Role.USER, Role.ADMIN, False),
    ],
)
def test_nobody_assigns_above_their_own_role(actor, target_role, allowed):
    assert Membership(role=actor).can_assign(target_role) is allowed


def test_admin_cannot_change_an_owner():
    assert Membership(role=Role.ADMIN).can_change(Membership(role=Role.OWNER)) is False
    assert Membership(role=Role.OWNER).can_change(Membership(role=Role.ADMIN)) is True
    assert Membership(role=Role.USER).can_change(Membership(role=Role.USER)) is False


def test_one_membership_per_user_and_guild(alice, guild):
    with pytest.raises(IntegrityError):
        Membership.objects.create(user=alice, guild=guild, role=Role.USER)


def test_guild_is_created_with_settings(db):
    guild = Guild.objects.create_with_settings(discord_id=2**62, name="Big Id")
    settings = GuildSettings.objects.get(guild=guild)
    assert settings.enabled is True
    assert settings.version == 1
    assert settings.allows_channel(123)
    settings.allowed_channel_ids = [5]
    assert settings.allows_channel(5) and not settings.allows_channel(6)
    assert Guild.objects.get(discord_id=2**62).discord_id == 2**62


def test_avatar_url(alice):
    assert alice.avatar_url.endswith(f"/embed/avatars/{(1001 >> 22) % 6}.png")
    alice.avatar = "abc"
    assert alice.avatar_url == "https://cdn.discordapp.com/avatars/1001/abc.png?size=64"
