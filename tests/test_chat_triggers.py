"""When the chat cog answers (``trigger_for``, pure) and what a member's roles change (``Effective``): conversation
modes, the cooldown, the block list, the DM switch and role overrides, without Discord or a database."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from botcore.cogs.chat import trigger_for
from guilds.effective import SettingsSnapshot
from guilds.models import ChannelSettings, GuildSettings, RoleSettings

CHANNEL, OTHER = 10, 11
ALICE, MALLORY = 1, 666
LOW, HIGH = 501, 502


def snapshot(*, mode: str = "", cooldown: int = 0, **row: object) -> SettingsSnapshot:
    overrides = {CHANNEL: ChannelSettings(channel_id=CHANNEL, mode=mode, cooldown_seconds=cooldown)}
    return SettingsSnapshot(guild_id=2, row=GuildSettings(**row), overrides=MappingProxyType(overrides))


def trigger(snap: SettingsSnapshot, **message: object) -> str | None:
    fields: dict[str, object] = {
        "author_id": ALICE,
        "channel_id": CHANNEL,
        "mentioned": False,
        "reply_to_bot": False,
        "is_dm": False,
    }
    return trigger_for(snap, **{**fields, **message})  # type: ignore[arg-type]


def test_by_the_servers_rules_only_a_mention_is_answered():
    assert trigger(snapshot()) is None
    assert trigger(snapshot(), mentioned=True) == "mention"


def test_answer_everyone_needs_no_mention_and_keeps_to_its_channel():
    assert trigger(snapshot(mode="everyone")) == "everyone"
    assert trigger(snapshot(mode="everyone"), channel_id=OTHER) is None


def test_within_the_cooldown_only_messages_addressed_to_the_bot_are_answered():
    cooled = snapshot(mode="everyone", cooldown=30)
    assert trigger(cooled, since_last_answer=None) == "everyone"
    assert trigger(cooled, since_last_answer=29.9) is None, "a decision: nothing sent, nothing recorded"
    assert trigger(cooled, since_last_answer=30.0) == "everyone"
    assert trigger(cooled, since_last_answer=1.0, mentioned=True) == "mention"
    assert trigger(cooled, since_last_answer=1.0, reply_to_bot=True) == "reply"


def test_a_thread_per_conversation_answers_everything_in_the_bots_own_threads():
    threads = snapshot(mode="threads")
    assert trigger(threads) is None, "in the channel itself, only what would trigger anyway"
    assert trigger(threads, mentioned=True) == "mention"
    assert trigger(threads, in_own_thread=True) == "thread"
    assert trigger(snapshot(), in_own_thread=True) is None, "only where the mode is on"


def test_a_blocked_user_is_never_answered():
    blocked = snapshot(mode="everyone", blocked_user_ids=[MALLORY], target_user_ids=[MALLORY])
    for message in ({}, {"mentioned": True}, {"reply_to_bot": True}, {"in_own_thread": True}):
        assert trigger(blocked, author_id=MALLORY, **message) is None
    assert trigger(blocked, author_id=ALICE) == "everyone"


def test_direct_messages_can_be_switched_off(settings):
    settings.DM_ANSWER_EVERYONE = True
    dm = SettingsSnapshot.for_dm()
    assert trigger(dm, is_dm=True) == "target"
    settings.DM_ENABLED = False
    assert trigger(dm, is_dm=True) is None
    settings.TARGET_USER_IDS = [ALICE]
    assert trigger(dm, is_dm=True) is None, "not even for target users"


@pytest.fixture
def roles() -> SettingsSnapshot:
    return SettingsSnapshot(
        guild_id=2,
        row=GuildSettings(system_prompt="Guild.", model="offline/parley-offline"),
        overrides=MappingProxyType({CHANNEL: ChannelSettings(channel_id=CHANNEL, system_prompt="Channel.")}),
        roles=MappingProxyType(
            {
                LOW: RoleSettings(role_id=LOW, system_prompt="Low.", model="openai/gpt-4o-mini"),
                HIGH: RoleSettings(role_id=HIGH, system_prompt="High."),
            }
        ),
    )


def test_the_highest_role_with_an_override_wins_field_by_field(roles):
    both = roles.effective(
        OTHER, roles=[HIGH, LOW]
    )  # highest first, as botcore.conversation.role_ids gives them
    assert (both.system_prompt, both.model) == ("High.", "openai/gpt-4o-mini")
    low = roles.effective(OTHER, roles=[999, LOW])
    assert (low.system_prompt, low.model) == ("Low.", "openai/gpt-4o-mini")
    nobody = roles.effective(OTHER)
    assert (nobody.system_prompt, nobody.model) == ("Guild.", "offline/parley-offline")


def test_a_channels_override_comes_before_the_roles(roles):
    here = roles.effective(CHANNEL, roles=[HIGH, LOW])
    assert (here.system_prompt, here.model) == ("Channel.", "openai/gpt-4o-mini"), "the channel sets no model"
