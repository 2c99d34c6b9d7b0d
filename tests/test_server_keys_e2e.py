"""The bot with servers' own provider keys, against the fake Discord and the fake provider: a server's calls carry
its own key and another server's the instance's; a key the provider refuses is reported to the owner once, however
many messages fail; a new key applies at once; and no key reaches the bot's logs."""

from __future__ import annotations

import time

import pytest
from cryptography.fernet import Fernet
from django.db.models import F

from accounts.models import User
from audit.models import AuditLog
from guilds.models import Guild, GuildSettings
from guilds.provider_keys import provider_key_set
from llm.models import ProviderKey
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.llm_server import FakeLLM
from tests.support import BotWorld

pytestmark = pytest.mark.e2e
MODEL = "openai/gpt-4o-mini"
ENCRYPTION_KEY = Fernet.generate_key().decode()
INSTANCE_KEY = "sk-instance-key-e2e-2b7c91"
SERVER_KEY = "sk-own-key-of-the-first-server-e2e-8d03aa"
NEW_KEY = "sk-new-key-of-the-first-server-e2e-51f0c2"
REFUSED_NOTICE = (
    "OpenAI refused this server's API key. A server owner can set a new one in the Parley dashboard (Keys)."
)


class World(BotWorld):
    other: dict
    owner: dict

    def guild_row(self, guild: dict) -> Guild:
        return self.fake.wait_for(
            lambda: Guild.objects.filter(discord_id=int(guild["id"])).first(), timeout=30
        )

    def set_key(self, api_key: str) -> None:
        guild = self.guild_row(self.guild)
        owner, _ = User.objects.get_or_create(username="keyowner", discord_id=int(self.owner["id"]))
        provider_key_set(guild=guild, actor=owner, provider="openai", api_key=api_key)

    def ask_other(self, text: str, author: dict) -> None:
        channel = int(self.other["channels"][0]["id"])
        self.fake.send_user_message(channel, f"<@{self.fake.bot_user['id']}> {text}", author=author)

    def owner_messages(self) -> list[dict]:
        dm = int(self.fake.create_dm_channel(self.owner)["id"])  # the owner's DM channel, as the bot opens it
        return [m for m in self.fake.sent_messages if m["channel_id"] == dm]


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    with FakeDiscord(heartbeat_interval_ms=1000) as fake, FakeLLM(token_delay=0) as llm:
        owner = fake.add_user("keyowner")
        guild = fake.add_guild(
            name="Own Key Guild", owner_id=int(owner["id"]), channels=[f"own-{n}" for n in range(5)]
        )
        other = fake.add_guild(name="Instance Key Guild", channels=["instance"])
        env = {
            "OPENAI_API_KEY": INSTANCE_KEY,
            "OPENAI_API_BASE": llm.url,
            "PARLEY_ENCRYPTION_KEY": ENCRYPTION_KEY,
            "LLM_MAX_RETRIES": "0",
            "LLM_TIMEOUT_SECONDS": "5",
            "LOG_LEVEL": "DEBUG",  # the most the bot ever writes: still no key
        }
        with World.running(fake, llm, guild, django_db_blocker, **env) as world:
            world.owner, world.other = owner, other
            with django_db_blocker.unblock():
                GuildSettings.objects.filter(guild=world.guild_row(other)).update(
                    model=MODEL, streaming=False, version=F("version") + 1
                )
            yield world


@pytest.mark.django_db(transaction=True)
def test_the_database_is_set_up_for_this_module():
    """pytest-django creates the test database only for marked tests (see tests/test_bot_llm_e2e.py)."""
    assert not ProviderKey.objects.exists()


@pytest.fixture
def w(world, django_db_blocker, settings):
    settings.PARLEY_ENCRYPTION_KEYS = [ENCRYPTION_KEY]  # this process encrypts what the bot decrypts
    with django_db_blocker.unblock():
        world.fresh(model=MODEL)
        yield world


def test_each_server_calls_with_its_own_key_or_the_instances(w):
    w.set_key(SERVER_KEY)
    w.ask("whose key?", w.user())
    w.fake.wait_for_messages(1, channel_id=w.channel, timeout=30)
    w.ask_other("and here?", w.user())
    w.fake.wait_for(lambda: len(w.llm.requests) == 2, timeout=30)
    own, instance = (r.headers["Authorization"] for r in w.llm.requests)
    assert (own, instance) == (f"Bearer {SERVER_KEY}", f"Bearer {INSTANCE_KEY}")


def test_a_refused_key_is_reported_to_the_owner_once_and_a_new_key_applies_at_once(w):
    w.set_key(SERVER_KEY)
    w.llm.default_behaviour = "401-echo"  # the provider refuses the key, quoting it
    w.ask("first", w.user())
    w.ask("second", w.user())
    notices = w.fake.wait_for_messages(2, channel_id=w.channel, timeout=30)
    assert [w.content(n) for n in notices] == [REFUSED_NOTICE] * 2, "each asker hears why"
    [alert] = w.fake.wait_for(lambda: w.owner_messages() or None, timeout=30)
    time.sleep(0.5)
    assert len(w.owner_messages()) == 1, "the owner is told once"
    assert "OpenAI refused the API key set for the server **Own Key Guild**" in alert["content"]
    assert f"/dashboard/guilds/{w.guild['id']}/keys/" in alert["content"]
    assert alert["allowed_mentions"]["parse"] == []
    assert AuditLog.objects.filter(action="provider_key.refused").count() == 1
    assert ProviderKey.objects.get().refused_status == 401

    w.llm.default_behaviour = "ok"
    w.set_key(NEW_KEY)  # the settings version moves: the bot reloads the keys
    assert ProviderKey.objects.get().refused_at is None
    w.ask("third", w.user())
    w.fake.wait_for_messages(3, channel_id=w.channel, timeout=30)
    assert w.llm.requests[-1].headers["Authorization"] == f"Bearer {NEW_KEY}"

    log = w.bot.log()
    assert "refused the own key of guild" in log and "[redacted]" in log
    for secret in (SERVER_KEY, NEW_KEY, INSTANCE_KEY, ENCRYPTION_KEY):
        assert secret not in log


def test_an_owner_who_takes_no_direct_messages_hears_it_in_the_channel(w):
    w.set_key(SERVER_KEY)  # a new key: nothing reported yet
    closed = {"message": "Cannot send messages to this user", "code": 50007}
    w.fake.fail_next("POST", r"^/users/@me/channels$", status=403, body=closed)
    w.fake.fail_next("POST", rf"^/channels/(?!{w.channel}/)[0-9]+/messages$", status=403, body=closed)
    w.llm.default_behaviour = "401"
    w.ask("anyone?", w.user())
    messages = w.fake.wait_for_messages(2, channel_id=w.channel, timeout=30)
    contents = sorted(w.content(m) for m in messages)
    assert contents[0] == REFUSED_NOTICE
    assert contents[1].startswith("Parley: OpenAI refused the API key set for the server **Own Key Guild**")
