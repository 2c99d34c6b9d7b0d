"""guilds/services.py: every write validates, saves, audits with the diff and tells the bot, or changes nothing."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from accounts.models import User
from audit.models import AuditLog
from guilds import services
from guilds.models import ChannelSettings, Guild, GuildSettings, Membership, RoleSettings

Role = Membership.Role


def _settings(guild: Guild) -> GuildSettings:
    return GuildSettings.objects.get(guild=guild)


def test_settings_update_saves_audits_and_bumps_version(guild, alice):
    diff = services.settings_update(
        guild=guild,
        actor=alice,
        changes={"system_prompt": "Be kind.", "temperature": 1.2, "enabled": True},
        expected_version=1,
        ip="10.0.0.1",
    )
    assert diff == {
        "system_prompt": [
            "You are Parley, a helpful assistant in a Discord server. Answer concisely.",
            "Be kind.",
        ],
        "temperature": [0.7, 1.2],
    }
    row = _settings(guild)
    assert (row.system_prompt, row.temperature, row.version) == ("Be kind.", 1.2, 2)
    entry = AuditLog.objects.get(action="settings.update")
    assert (entry.guild, entry.actor, entry.ip, entry.changes) == (guild, alice, "10.0.0.1", diff)


def test_settings_update_without_changes_writes_nothing(guild, alice):
    assert services.settings_update(guild=guild, actor=alice, changes={"enabled": True}) == {}
    assert _settings(guild).version == 1
    assert not AuditLog.objects.exists()


def test_settings_update_refuses_a_stale_version(guild, alice, bob):
    services.settings_update(guild=guild, actor=bob, changes={"temperature": 0.2}, expected_version=1)
    with pytest.raises(services.StaleSettingsError, match="Someone else saved these settings"):
        services.settings_update(guild=guild, actor=alice, changes={"temperature": 1.5}, expected_version=1)
    assert _settings(guild).temperature == 0.2
    assert AuditLog.objects.count() == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"temperature": 2.5}, "temperature"),
        ({"system_prompt": "x" * 4001}, "system_prompt"),
        ({"model": "openai/no-such-model"}, "model"),
        ({"model": "openai/gpt-4o-mini"}, "model"),  # no OPENAI_API_KEY in tests: unavailable
        ({"allowed_channel_ids": [999]}, "allowed_channel_ids"),
        ({"target_user_ids": [-5]}, "target_user_ids"),
        ({"max_output_tokens": 5}, "max_output_tokens"),
    ],
)
def test_settings_update_rejects_bad_input(guild, alice, changes, field):
    with pytest.raises(ValidationError) as caught:
        services.settings_update(guild=guild, actor=alice, changes=changes)
    assert field in caught.value.message_dict
    assert _settings(guild).version == 1
    assert not AuditLog.objects.exists()


def test_settings_update_refuses_other_fields(guild, alice):
    with pytest.raises(ValidationError, match="version"):
        services.settings_update(guild=guild, actor=alice, changes={"version": 7})


def test_settings_update_by_the_bot_is_labelled(guild):
    services.settings_update(guild=guild, actor=None, actor_label="bot", changes={"streaming": False})
    entry = AuditLog.objects.get()
    assert (entry.actor, entry.actor_label) == (None, "bot")


def test_settings_revert_restores_before_values(settings_entry, guild, bob):
    diff = services.settings_revert(entry=settings_entry, actor=bob)
    assert diff == {"system_prompt": ["Be brief.", settings_entry.changes["system_prompt"][0]]}
    assert _settings(guild).system_prompt == settings_entry.changes["system_prompt"][0]
    revert = AuditLog.objects.get(action="settings.revert")
    assert (revert.actor, revert.target, revert.changes) == (bob, f"entry:{settings_entry.pk}", diff)


def test_settings_revert_twice_has_nothing_to_do(settings_entry, bob):
    services.settings_revert(entry=settings_entry, actor=bob)
    with pytest.raises(ValidationError, match="Nothing to revert"):
        services.settings_revert(entry=settings_entry, actor=bob)
    assert AuditLog.objects.filter(action="settings.revert").count() == 1


def test_settings_revert_only_reverts_settings_changes(guild, bob):
    entry = AuditLog.objects.create(action="member.add", guild=guild, changes={"role": [None, "USER"]})
    with pytest.raises(ValidationError):
        services.settings_revert(entry=entry, actor=bob)


def test_channel_override_set_and_remove(guild, bob):
    channel = guild.channels.get(name="general").discord_id
    diff = services.channel_override_set(
        guild=guild, actor=bob, channel_id=channel, system_prompt="Pirate talk."
    )
    assert diff == {"system_prompt": [None, "Pirate talk."], "model": [None, ""]}
    assert ChannelSettings.objects.get(guild=guild, channel_id=channel).system_prompt == "Pirate talk."
    services.channel_override_set(guild=guild, actor=bob, channel_id=channel, system_prompt="Pirate talk.")
    assert AuditLog.objects.filter(action="channel_override.set").count() == 1  # the same values: no entry
    services.channel_override_remove(guild=guild, actor=bob, channel_id=channel)
    assert not ChannelSettings.objects.exists()
    removed = AuditLog.objects.get(action="channel_override.remove")
    assert removed.target == f"channel:{channel}"
    assert removed.changes == {"system_prompt": ["Pirate talk.", None], "model": ["", None]}
    assert _settings(guild).version == 3  # the bot re-reads overrides when the version moves


@pytest.mark.parametrize(
    "kwargs",
    [
        {"channel_id": 999, "system_prompt": "x"},
        {"channel_id": 222222222222222221, "model": "nope/nope"},
        {"channel_id": 222222222222222221, "system_prompt": "x" * 4001},
        {"channel_id": 222222222222222221},
        {"channel_id": 222222222222222221, "mode": "loud"},
        {"channel_id": 222222222222222221, "mode": "everyone", "cooldown_seconds": -1},
        {"channel_id": 222222222222222221, "mode": "everyone", "cooldown_seconds": True},
        {"channel_id": 222222222222222221, "mode": "threads", "cooldown_seconds": 5},
    ],
)
def test_channel_override_rejects_bad_input(guild, bob, kwargs):
    with pytest.raises(ValidationError):
        services.channel_override_set(guild=guild, actor=bob, **kwargs)
    assert not ChannelSettings.objects.exists()
    assert not AuditLog.objects.exists()


def test_a_conversation_mode_alone_is_an_override_and_its_removal_is_audited(guild, bob):
    channel = guild.channels.get(name="general").discord_id
    diff = services.channel_override_set(
        guild=guild, actor=bob, channel_id=channel, mode="everyone", cooldown_seconds=20
    )
    assert diff == {
        "system_prompt": [None, ""],
        "model": [None, ""],
        "mode": ["", "everyone"],
        "cooldown_seconds": [0, 20],
    }
    services.channel_override_remove(guild=guild, actor=bob, channel_id=channel)
    assert AuditLog.objects.get(action="channel_override.remove").changes == {
        "system_prompt": ["", None],
        "model": ["", None],
        "mode": ["everyone", None],
        "cooldown_seconds": [20, None],
    }
    assert _settings(guild).version == 3


def test_role_override_set_and_remove(guild, bob):
    diff = services.role_override_set(guild=guild, actor=bob, role_id=4242, system_prompt="For VIPs.")
    assert diff == {"system_prompt": [None, "For VIPs."], "model": [None, ""]}
    services.role_override_set(guild=guild, actor=bob, role_id=4242, system_prompt="For VIPs.")
    assert AuditLog.objects.filter(action="role_override.set").count() == 1  # the same values: no entry
    services.role_override_remove(guild=guild, actor=bob, role_id=4242)
    assert not RoleSettings.objects.exists()
    removed = AuditLog.objects.get(action="role_override.remove")
    assert (removed.target, removed.changes) == (
        "role:4242",
        {"system_prompt": ["For VIPs.", None], "model": ["", None]},
    )
    assert _settings(guild).version == 3


@pytest.mark.parametrize(
    "kwargs",
    [
        {"role_id": 0, "system_prompt": "x"},
        {"role_id": 2**63, "system_prompt": "x"},
        {"role_id": True, "system_prompt": "x"},
        {"role_id": 111111111111111111, "system_prompt": "x"},  # @everyone: the guild's own id
        {"role_id": 4242},
        {"role_id": 4242, "model": "nope/nope"},
        {"role_id": 4242, "system_prompt": "x" * 4001},
    ],
)
def test_role_override_rejects_bad_input(guild, bob, kwargs):
    with pytest.raises(ValidationError):
        services.role_override_set(guild=guild, actor=bob, **kwargs)
    assert not RoleSettings.objects.exists()
    assert not AuditLog.objects.exists()


def test_member_add_by_discord_id_creates_a_placeholder(guild, bob):
    membership = services.member_add(guild=guild, actor=bob, user_or_discord_id=4242, role=Role.ADMIN)
    assert (membership.user.discord_id, membership.user.username, membership.role) == (
        4242,
        "discord-4242",
        "ADMIN",
    )
    assert not membership.user.has_usable_password()
    entry = AuditLog.objects.get(action="member.add")
    assert (entry.actor, entry.target, entry.changes) == (bob, "user:4242", {"role": [None, "ADMIN"]})


def test_member_add_refuses_escalation_and_duplicates(guild, bob, carol):
    with pytest.raises(ValidationError, match="above your own"):
        services.member_add(guild=guild, actor=bob, user_or_discord_id=4242, role=Role.OWNER)
    with pytest.raises(ValidationError, match="already a member"):
        services.member_add(guild=guild, actor=bob, user_or_discord_id=carol, role=Role.USER)
    with pytest.raises(PermissionDenied):
        services.member_add(guild=guild, actor=carol, user_or_discord_id=4242, role=Role.USER)
    assert not AuditLog.objects.exists()


def test_member_role_rules(guild, alice, bob, carol):
    owner = Membership.objects.get(user=alice)
    with pytest.raises(ValidationError, match="cannot change an owner"):
        services.member_role_change(membership=owner, actor=bob, role=Role.USER)
    with pytest.raises(ValidationError, match="last owner"):
        services.member_role_change(membership=owner, actor=alice, role=Role.ADMIN)
    carols = Membership.objects.get(user=carol)
    with pytest.raises(ValidationError, match="above your own"):
        services.member_role_change(membership=carols, actor=bob, role=Role.OWNER)
    assert not AuditLog.objects.exists()
    assert services.member_role_change(membership=carols, actor=bob, role=Role.ADMIN) == {
        "role": ["USER", "ADMIN"]
    }
    assert AuditLog.objects.get().action == "member.role_change"


def test_member_remove_rules(guild, alice, bob, carol):
    owner = Membership.objects.get(user=alice)
    with pytest.raises(ValidationError, match="cannot remove an owner"):
        services.member_remove(membership=owner, actor=bob)
    with pytest.raises(ValidationError, match="You are the last owner"):
        services.member_remove(membership=owner, actor=alice)
    assert not AuditLog.objects.exists()
    services.member_role_change(membership=Membership.objects.get(user=bob), actor=alice, role=Role.OWNER)
    services.member_remove(membership=owner, actor=alice)  # with a second owner, alice may leave
    assert not Membership.objects.filter(user=alice).exists()
    assert AuditLog.objects.filter(action="member.remove").get().changes == {"role": ["OWNER", None]}


def test_staff_act_as_owners_labelled_admin(guild, alice, staff):
    services.member_add(guild=guild, actor=staff, user_or_discord_id=77, role=Role.OWNER)
    assert AuditLog.objects.get().actor_label == "admin"


def test_ownership_bootstrap(guild, db):
    other = Guild.objects.create_with_settings(discord_id=5, name="Other", owner_discord_id=9)
    gone = Guild.objects.create_with_settings(
        discord_id=6, name="Left", owner_discord_id=1001, is_active=False
    )
    user = User.objects.create_user(username="owner", discord_id=1001)
    granted = services.ownership_bootstrap(user=user, owned_guild_ids={other.discord_id})
    assert {g.pk for g in granted} == {guild.pk, other.pk}
    assert not Membership.objects.filter(user=user, guild=gone).exists()
    entries = AuditLog.objects.filter(action="member.add").order_by("guild__name")
    assert [(e.guild.name, e.actor_label, e.changes) for e in entries] == [
        ("Other", "system", {"role": [None, "OWNER"]}),
        ("Parley Test Server", "system", {"role": [None, "OWNER"]}),
    ]
    assert services.ownership_bootstrap(user=user, owned_guild_ids={other.discord_id}) == []


def test_ownership_bootstrap_upgrades_an_existing_member(guild, carol):
    guild.owner_discord_id = carol.discord_id
    guild.save()
    services.ownership_bootstrap(user=carol)
    assert Membership.objects.get(user=carol).role == Role.OWNER
    assert AuditLog.objects.get().changes == {"role": ["USER", "OWNER"]}
