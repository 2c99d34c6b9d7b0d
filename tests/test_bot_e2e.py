"""The real bot (``manage.py runbot`` in a subprocess) against the local fake Discord server, over real sockets."""

from __future__ import annotations

import time

import pytest

from botcore.models import ShardStatus
from guilds.models import Channel, Guild, GuildSettings
from tests.fakes.discord_server import FakeDiscord
from tests.support import BotProcess

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

TARGET_ID = 424242424242424242


@pytest.fixture
def server(fake):
    """A guild with two text channels and a thread, owned by the fake's default user."""
    return fake.add_guild(name="Fake Guild", channels=["general", "random", {"name": "a-thread", "type": 11}])


def channel_ids(guild: dict) -> list[int]:
    return [int(channel["id"]) for channel in guild["channels"]]


@pytest.fixture
def bot(fake, server):
    with BotProcess(fake, TARGET_USER_ID=str(TARGET_ID)) as process:
        process.wait_ready()
        yield process


def target(fake: FakeDiscord) -> dict:
    return fake.add_user("targetuser", user_id=TARGET_ID)


def test_target_users_message_gets_a_reply(fake, server, bot):
    general = channel_ids(server)[0]
    sent = fake.send_user_message(general, "hello parley", author=target(fake))
    [reply] = fake.wait_for_messages(1, channel_id=general)
    assert reply["reply_to"] == int(sent["id"])
    assert "offline" in reply["content"].lower()
    assert "hello parley" in reply["content"]
    assert reply["allowed_mentions"] == {"parse": [], "replied_user": True}
    assert any(call for call in fake.typing_calls)


def test_non_target_user_is_ignored(fake, server, bot):
    general = channel_ids(server)[0]
    stranger = fake.add_user("stranger")
    fake.send_user_message(general, "nobody asked you", author=stranger)
    answered = fake.send_user_message(general, "but answer me", author=target(fake))
    fake.wait_for_messages(1, channel_id=general)
    time.sleep(0.5)
    assert [m["reply_to"] for m in fake.sent_messages] == [int(answered["id"])]


def test_mention_and_reply_to_bot_get_replies(fake, server, bot):
    general = channel_ids(server)[0]
    someone = fake.add_user("someone")
    mention = fake.send_user_message(general, f"<@{fake.bot_user['id']}> what is up", author=someone)
    [first] = fake.wait_for_messages(1, channel_id=general)
    assert first["reply_to"] == int(mention["id"])
    follow_up = fake.send_user_message(general, "tell me more", author=someone, reply_to=first["id"])
    second = fake.wait_for_messages(2, channel_id=general)[1]
    assert second["reply_to"] == int(follow_up["id"])
    # The offline model reports what it saw: system prompt, the mention, the bot's answer and the follow-up.
    assert "2 user turns, 4 messages in all, system prompt seen" in second["content"]


def test_thread_counts_as_its_parent_channel(fake, server, bot):
    general, random_channel = channel_ids(server)[:2]
    thread = int(server["threads"][0]["id"])
    GuildSettings.objects.filter(guild__discord_id=int(server["id"])).update(
        allowed_channel_ids=[general], version=2
    )
    fake.send_user_message(random_channel, "not here", author=target(fake))
    fake.send_user_message(thread, "in the thread", author=target(fake))
    [reply] = fake.wait_for_messages(1)
    assert reply["channel_id"] == thread


def test_llm_text_cannot_ping_everyone_or_roles(fake, server, bot):
    general = channel_ids(server)[0]
    fake.send_user_message(general, "say @everyone and <@&123456789012345678> please", author=target(fake))
    [reply] = fake.wait_for_messages(1, channel_id=general)
    assert "@everyone" in reply["content"]
    assert reply["allowed_mentions"]["parse"] == []
    assert "roles" not in reply["allowed_mentions"] or reply["allowed_mentions"]["roles"] == []


def test_guild_sync_on_ready_join_and_leave(fake, server, bot):
    synced = Guild.objects.get(discord_id=int(server["id"]))
    assert synced.is_active and synced.name == "Fake Guild"
    assert GuildSettings.objects.filter(guild=synced).exists()
    assert set(Channel.objects.filter(guild=synced).values_list("name", flat=True)) == {
        "general",
        "random",
        "a-thread",
    }
    joined = fake.add_guild(name="Second Guild", channels=["lobby"])
    fake.wait_for(lambda: Guild.objects.filter(discord_id=int(joined["id"])).exists())
    second = Guild.objects.get(discord_id=int(joined["id"]))
    assert GuildSettings.objects.filter(guild=second).exists()
    assert second.audit_logs.filter(action="guild.join").count() == 1
    fake.remove_guild(int(joined["id"]))
    fake.wait_for(lambda: not Guild.objects.get(pk=second.pk).is_active)
    assert second.audit_logs.filter(action="guild.leave").count() == 1
    assert GuildSettings.objects.filter(guild=second).exists(), "settings are kept after a leave"


def test_shard_status_reaches_ready_with_latency(fake, server, bot):
    row = fake.wait_for(
        lambda: ShardStatus.objects.filter(shard_id=0, status="READY", latency_ms__isnull=False).first(),
        timeout=15,
    )
    assert row.guild_count == 1
    assert row.connect_count >= 1
    assert row.pid and row.host


def test_forced_disconnect_resumes_and_still_answers(fake, server, bot):
    general = channel_ids(server)[0]
    identifies = fake.identify_count
    fake.disconnect_all()
    fake.wait_for(lambda: fake.resume_count == 1, timeout=15)
    assert fake.identify_count == identifies
    fake.send_user_message(general, "still there?", author=target(fake))
    assert fake.wait_for_messages(1, channel_id=general, timeout=15)
    fake.wait_for(lambda: ShardStatus.objects.filter(shard_id=0, resume_count=1, status="READY").exists())


def test_429_on_send_is_retried(fake, server, bot):
    general = channel_ids(server)[0]
    fake.fail_next("POST", rf"/channels/{general}/messages", status=429, retry_after=0.3)
    fake.send_user_message(general, "rate limit me", author=target(fake))
    [reply] = fake.wait_for_messages(1, channel_id=general, timeout=15)
    assert "rate limit me" in reply["content"]
    failed = [r for r in fake.requests if r.get("status") == 429]
    assert failed, "the fake should have answered 429 once"


def test_llm_failure_gives_the_friendly_line(fake, server, bot):
    general = channel_ids(server)[0]
    GuildSettings.objects.filter(guild__discord_id=int(server["id"])).update(
        model="anthropic/claude-3-5-haiku-20241022", version=5
    )
    fake.send_user_message(general, "hello?", author=target(fake))
    [reply] = fake.wait_for_messages(1, channel_id=general)
    assert reply["content"].startswith("This server's model is not configured")
    fake.send_user_message(general, "and now?", author=target(fake))
    assert len(fake.wait_for_messages(2, channel_id=general)) == 2, "the bot keeps answering after a failure"


def test_disabled_guild_is_quiet(fake, server, bot):
    general = channel_ids(server)[0]
    GuildSettings.objects.filter(guild__discord_id=int(server["id"])).update(enabled=False, version=9)
    fake.send_user_message(general, "anyone?", author=target(fake))
    time.sleep(1.0)
    assert fake.sent_messages == []


def test_sigterm_marks_shards_disconnected(fake, server):
    with BotProcess(fake, "--shard-count", "1") as process:
        process.wait_ready()
        assert process.stop() == 0
    assert ShardStatus.objects.get(shard_id=0).status == "DISCONNECTED"


def test_two_processes_split_the_shards(fake):
    guilds = [fake.add_guild(name=f"Shard {n} guild", shard=(n, 2)) for n in (0, 1)]
    with (
        BotProcess(fake, "--shard-count", "2", "--shard-ids", "0", TARGET_USER_ID=str(TARGET_ID)) as first,
        BotProcess(fake, "--shard-count", "2", "--shard-ids", "1", TARGET_USER_ID=str(TARGET_ID)) as second,
    ):
        assert first.wait_ready()["shards"] == {"0": "READY"}
        assert second.wait_ready()["shards"] == {"1": "READY"}
        for guild in guilds:
            fake.send_user_message(channel_ids(guild)[0], "which shard?", author=target(fake))
        replies = fake.wait_for_messages(2)
        assert {r["guild_id"] for r in replies} == {int(g["id"]) for g in guilds}
        assert Guild.objects.filter(is_active=True).count() == 2
        assert set(Guild.objects.values_list("shard_id", flat=True)) == {0, 1}


def test_health_is_503_until_the_gateway_is_ready(fake, server):
    with BotProcess(fake, "--shard-count", "1", DISCORD_GATEWAY_URL="ws://127.0.0.1:9/gateway") as process:
        deadline = time.monotonic() + 20
        result = None
        while time.monotonic() < deadline and result is None:
            result = process.health()
            time.sleep(0.1)
        assert result is not None
        status, body = result
        assert status == 503
        assert body["shards"] == {"0": "CONNECTING"}
        assert "shard 0 is CONNECTING" in body["reasons"]


def test_missing_token_exits_with_one_line(fake):
    process = BotProcess(fake, DISCORD_BOT_TOKEN="")
    process.env.pop("DISCORD_BOT_TOKEN")
    process.start()
    assert process.popen.wait(30) != 0
    assert (
        process.log().strip()
        == "CommandError: No bot token: set DISCORD_BOT_TOKEN or DISCORD_BOT_TOKEN_FILE."
    )


def test_rejected_token_exits_with_one_line(fake):
    process = BotProcess(fake, DISCORD_BOT_TOKEN="wrong-token")
    process.start()
    assert process.popen.wait(30) != 0
    assert "Traceback" not in process.log()
    assert process.log().strip().splitlines()[-1].startswith("CommandError: Discord rejected the bot token")


def test_dashboard_save_reaches_the_bot_within_a_second(fake, server, alice_owner):
    """The dashboard's service saves; the running bot (default settings re-check) follows within a second, with
    no restart and no shared cache."""
    from guilds import services

    general, random_channel = channel_ids(server)[:2]
    with BotProcess(fake, TARGET_USER_ID=str(TARGET_ID), BOT_SETTINGS_RECHECK_SECONDS="1") as process:
        process.wait_ready()
        fake.send_user_message(general, "warm the cache", author=target(fake))
        fake.wait_for_messages(1, channel_id=general)
        guild = Guild.objects.get(discord_id=int(server["id"]))
        services.settings_update(
            guild=guild, actor=alice_owner, changes={"allowed_channel_ids": [random_channel]}
        )
        time.sleep(1.1)
        fake.send_user_message(general, "ignored now", author=target(fake))
        fake.send_user_message(random_channel, "answered here", author=target(fake))
        fake.wait_for_messages(1, channel_id=random_channel)
        services.settings_update(guild=guild, actor=alice_owner, changes={"enabled": False})
        time.sleep(1.1)
        fake.send_user_message(random_channel, "and now?", author=target(fake))
        time.sleep(1.0)
    assert [m["channel_id"] for m in fake.sent_messages] == [general, random_channel]


@pytest.fixture
def alice_owner(server):
    from accounts.models import User
    from guilds.models import Membership

    user = User.objects.create_user(username="owner", discord_id=int(server["owner_id"]))
    guild = Guild.objects.create_with_settings(discord_id=int(server["id"]), name=server["name"])
    Membership.objects.create(user=user, guild=guild, role=Membership.Role.OWNER)
    return user


def test_direct_messages_can_be_switched_off(fake, server):
    env = {"DM_ENABLED": "false", "DM_ANSWER_EVERYONE": "true", "TARGET_USER_ID": str(TARGET_ID)}
    with BotProcess(fake, **env) as process:
        process.wait_ready()
        dm = int(fake.create_dm_channel(target(fake))["id"])
        fake.send_user_message(dm, "hello in private", author=target(fake))
        command = fake.dispatch_interaction("ask", {"prompt": "and now?"}, channel_id=dm, user=target(fake))
        general = channel_ids(server)[0]
        fake.send_user_message(general, "hello in public", author=target(fake))
        [reply] = fake.wait_for_messages(1, channel_id=general)
        refusal = fake.wait_for(
            lambda: [r for r in fake.interaction_responses if r["interaction_id"] == int(command["id"])]
        )
        time.sleep(0.5)
    assert "hello in public" in reply["content"]
    assert [m["channel_id"] for m in fake.sent_messages if m["via"] == "rest"] == [general], (
        "the DM is ignored"
    )
    assert (
        refusal[0]["content"] == "Parley does not answer direct messages."
        and refusal[0]["data"]["flags"] & 64
    )


def test_direct_messages_from_target_users_only(fake, server, bot):
    someone = fake.add_user("someone")
    ignored = int(fake.create_dm_channel(someone)["id"])
    fake.send_user_message(ignored, "hello in private", author=someone)
    answered = int(fake.create_dm_channel(target(fake))["id"])
    fake.send_user_message(answered, "hello from a target", author=target(fake))
    [reply] = fake.wait_for_messages(1)
    assert reply["channel_id"] == answered
    assert "hello from a target" in reply["content"]
    time.sleep(0.5)
    assert [m["channel_id"] for m in fake.sent_messages] == [answered]
