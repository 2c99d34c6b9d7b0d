"""With Redis, a settings save reaches the bot at once over the channel layer: two processes (this one saving, as
the web does, and a real ``runbot``), and the bot's own version check turned down to once an hour."""

from __future__ import annotations

import os
import time

import pytest
import redis

from guilds import services
from guilds.models import Guild, GuildSettings
from tests.fakes.discord_server import FakeDiscord
from tests.support import BotProcess, redis_delete_prefix

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
# The tests' Redis database (make test-services), and keys of this run's own, deleted at the end.
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15"
PREFIX = f"parley-test-push-{os.getpid()}"


@pytest.fixture
def redis_layer(settings):
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("needs Redis on 127.0.0.1:6379")
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # As config/settings.py builds it for the bot, which gets CACHE_KEY_PREFIX=PREFIX.
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 15}], "prefix": f"{PREFIX}:asgi"},
        }
    }
    yield
    redis_delete_prefix(REDIS_URL, PREFIX)


def test_a_save_changes_the_bots_very_next_answer(redis_layer):
    with FakeDiscord(heartbeat_interval_ms=1000) as fake:
        server = fake.add_guild(name="Pushed", channels=["general"])
        channel = int(server["channels"][0]["id"])
        env = {"REDIS_URL": REDIS_URL, "CACHE_KEY_PREFIX": PREFIX, "BOT_SETTINGS_RECHECK_SECONDS": "3600"}
        with BotProcess(fake, **env) as bot:
            bot.wait_ready()
            bot.wait_until(lambda: "listening for settings changes" in bot.log(), 20, "the push listener")
            user = fake.add_user("asker")
            mention = f"<@{fake.bot_user['id']}>"

            def ask() -> str:
                before = len(fake.sent_messages)
                fake.send_user_message(channel, f"{mention} hello", author=user)
                [*_, reply] = fake.wait_for(
                    lambda: fake.sent_messages if len(fake.sent_messages) > before else None, timeout=20
                )
                return fake.messages[reply["id"]]["content"]

            assert "system prompt seen" in ask()  # the default prompt, now in the bot's cache for an hour
            time.sleep(6)  # longer than a Redis receive's 5 s wait: the listener must outlast idle spells
            guild = Guild.objects.get(discord_id=int(server["id"]))
            services.settings_update(guild=guild, actor=None, changes={"system_prompt": ""})
            assert GuildSettings.objects.get(guild=guild).system_prompt == ""
            time.sleep(0.5)  # the push is on its way; the bot's own check would wait an hour
            assert "system prompt not set" in ask()
