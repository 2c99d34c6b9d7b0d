"""Slash commands through the fake Discord server's interaction events, answered by the real bot process."""

from __future__ import annotations

import pytest

from accounts.models import User
from audit.models import AuditLog
from guilds.models import Guild, GuildSettings, Membership
from tests.fakes.discord_server import FakeDiscord
from tests.support import BotProcess

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def server(fake):
    return fake.add_guild(name="Slash Guild", channels=["general", "quiet"])


@pytest.fixture
def bot(fake, server):
    with BotProcess(fake) as process:
        process.wait_ready()
        yield process


def responses(fake: FakeDiscord, interaction: dict, n: int) -> list[dict]:
    """The bot's first ``n`` answers to one interaction (callback, then follow-ups)."""

    def matching() -> list[dict]:
        found = [r for r in fake.interaction_responses if r.get("interaction_id") == int(interaction["id"])]
        return found[:n] if len(found) >= n else []

    return fake.wait_for(matching)


def settings_of(server: dict) -> GuildSettings:
    return GuildSettings.objects.get(guild__discord_id=int(server["id"]))


def test_commands_are_synced_globally(fake, server, bot):
    synced = fake.wait_for(lambda: fake.command_syncs)
    assert synced[0]["guild_id"] is None
    assert set(synced[0]["names"]) == {"ask", "summarize", "parley"}


def test_dev_guild_gets_an_instant_sync(fake, server):
    with BotProcess(fake, DISCORD_DEV_GUILD_ID=server["id"]) as process:
        process.wait_ready()
        synced = fake.wait_for(lambda: fake.command_syncs)
    assert synced[0]["guild_id"] == int(server["id"])


def test_ask_defers_then_follows_up(fake, server, bot):
    general = int(server["channels"][0]["id"])
    interaction = fake.dispatch_interaction("ask", {"prompt": "what is two plus two"}, channel_id=general)
    callback, followup = responses(fake, interaction, 2)
    assert callback["kind"] == "callback" and callback["type"] == 5, "deferred within Discord's 3 seconds"
    assert "what is two plus two" in followup["content"]
    assert followup["data"]["allowed_mentions"]["parse"] == []


def test_ask_is_refused_outside_allowed_channels(fake, server, bot):
    general, quiet = (int(channel["id"]) for channel in server["channels"])
    GuildSettings.objects.filter(pk=settings_of(server).pk).update(allowed_channel_ids=[general], version=2)
    interaction = fake.dispatch_interaction("ask", {"prompt": "hello"}, channel_id=quiet)
    [callback] = responses(fake, interaction, 1)
    assert callback["type"] == 4
    assert callback["content"] == "Parley is not enabled in this channel."
    assert callback["data"]["flags"] & 64, "ephemeral"


def test_parley_settings_shows_the_settings(fake, server, bot):
    general = int(server["channels"][0]["id"])
    interaction = fake.dispatch_interaction(
        "parley", [{"type": 1, "name": "settings", "options": []}], channel_id=general
    )
    [callback] = responses(fake, interaction, 1)
    embed = callback["data"]["embeds"][0]
    assert embed["url"].endswith(f"/dashboard/guilds/{server['id']}/settings/")
    fields = {field["name"]: field["value"] for field in embed["fields"]}
    assert fields["Model"] == "offline/parley-offline"
    assert fields["Channels"] == "every channel"
    assert callback["data"]["flags"] & 64


def _model_command(fake: FakeDiscord, server: dict, user: dict, model: str) -> dict:
    general = int(server["channels"][0]["id"])
    interaction = fake.dispatch_interaction(
        "parley",
        [{"type": 1, "name": "model", "options": [{"type": 3, "name": "model", "value": model}]}],
        channel_id=general,
        user=user,
    )
    [callback] = responses(fake, interaction, 1)
    return callback


def _account(fake: FakeDiscord, server: dict, name: str, role: str | None) -> dict:
    discord_user = fake.add_user(name)
    user = User.objects.create_user(username=name, discord_id=int(discord_user["id"]))
    if role:
        guild = Guild.objects.get(discord_id=int(server["id"]))
        Membership.objects.create(user=user, guild=guild, role=role)
    return discord_user


def test_admin_switches_the_model_and_it_is_audited(fake, server, bot):
    admin = _account(fake, server, "admin", Membership.Role.ADMIN)
    callback = _model_command(fake, server, admin, "offline/parley-offline")
    assert "already" in callback["content"] or "now uses" in callback["content"]
    GuildSettings.objects.filter(pk=settings_of(server).pk).update(model="openai/gpt-4o-mini")
    callback = _model_command(fake, server, admin, "offline/parley-offline")
    assert callback["content"] == "This server now uses **offline/parley-offline**."
    assert settings_of(server).model == "offline/parley-offline"
    entry = AuditLog.objects.get(action="settings.update")
    assert entry.actor.discord_id == int(admin["id"])
    assert entry.changes == {"model": ["openai/gpt-4o-mini", "offline/parley-offline"]}


def test_users_and_strangers_cannot_switch_the_model(fake, server, bot):
    user = _account(fake, server, "plainuser", Membership.Role.USER)
    stranger = fake.add_user("stranger")
    assert _model_command(fake, server, user, "offline/parley-offline")["content"] == (
        "Only this server's Parley admins can change the model."
    )
    assert "Log in to the Parley dashboard" in _model_command(fake, server, stranger, "x")["content"]
    assert not AuditLog.objects.filter(action="settings.update").exists()


def test_unknown_or_unconfigured_model_is_refused(fake, server, bot):
    admin = _account(fake, server, "admin2", Membership.Role.ADMIN)
    before = settings_of(server).model
    callback = _model_command(fake, server, admin, "anthropic/claude-sonnet-4-6")
    assert "ANTHROPIC_API_KEY" in callback["content"]
    assert _model_command(fake, server, admin, "nonsense/model")["data"]["flags"] & 64
    assert settings_of(server).model == before


def test_ask_over_budget_is_refused_and_counted(fake, server, bot):
    from decimal import Decimal

    from llm.models import Usage

    general = int(server["channels"][0]["id"])
    GuildSettings.objects.filter(pk=settings_of(server).pk).update(daily_budget_usd=Decimal("0"), version=3)
    interaction = fake.dispatch_interaction("ask", {"prompt": "expensive question"}, channel_id=general)
    _callback, followup = responses(fake, interaction, 2)
    assert "daily AI budget" in followup["content"]
    usage = fake.wait_for(lambda: Usage.objects.filter(source="slash").first())
    assert usage.outcome == "over_budget" and usage.input_tokens == 0


def test_ask_in_a_dm_is_refused_to_strangers(fake, server, bot):
    from llm.models import Usage

    stranger = fake.add_user("stranger")
    dm = int(fake.create_dm_channel(stranger)["id"])
    interaction = fake.dispatch_interaction("ask", {"prompt": "free answers?"}, channel_id=dm, user=stranger)
    [callback] = responses(fake, interaction, 1)
    assert callback["content"] == "Parley answers direct messages only for the people its operator chose."
    assert callback["data"]["flags"] & 64
    row = fake.wait_for(lambda: Usage.objects.first())
    assert (row.outcome, row.guild_id, row.input_tokens) == ("disabled", None, 0), (
        "refused, counted, not called"
    )


def test_ask_in_a_dm_answers_targets_under_the_dm_limits(fake, server):
    from llm.models import Usage

    target = fake.add_user("target")
    dm = int(fake.create_dm_channel(target)["id"])
    env = {"TARGET_USER_ID": target["id"], "DM_USER_MESSAGES_PER_DAY": "1"}
    with BotProcess(fake, **env) as process:
        process.wait_ready()
        first = fake.dispatch_interaction("ask", {"prompt": "first"}, channel_id=dm, user=target)
        assert "first" in responses(fake, first, 2)[1]["content"]
        second = fake.dispatch_interaction("ask", {"prompt": "second"}, channel_id=dm, user=target)
        assert "limit of 1 messages a day" in responses(fake, second, 2)[1]["content"]
        rows = fake.wait_for(
            lambda: list(Usage.objects.order_by("id")) if Usage.objects.count() == 2 else None
        )
    assert [(row.guild_id, row.outcome, row.source) for row in rows] == [
        (None, "ok", "slash"),
        (None, "user_limited", "slash"),
    ]
