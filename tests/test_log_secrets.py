"""Full runs with LOG_FORMAT=json and LOG_LEVEL=DEBUG: every line is JSON, web lines carry the request id, and no
configured secret or message text reaches the logs. The bot answers once with the offline model and once through
litellm and the fake OpenAI server; the web app serves pages under gunicorn, as in production."""

from __future__ import annotations

import json

import pytest

from guilds.models import GuildSettings
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.llm_server import FakeLLM
from tests.support import BotProcess, WebProcess

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BOT_TOKEN = "MTQ0.bot-token-do-not-log-5f2a9c1e"
CLIENT_SECRET = "client-secret-do-not-log-8d41b7"
OPENAI_KEY = "sk-openai-key-do-not-log-3e9f0a"
SECRET_KEY = "django-secret-key-do-not-log-" + "x" * 24
SECRETS = (BOT_TOKEN, CLIENT_SECRET, OPENAI_KEY, SECRET_KEY)
TARGET_ID = 515151515151515151


def json_lines(output: str) -> list[dict]:
    records = []
    for number, line in enumerate(output.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"line {number} is not JSON: {line!r}") from None
    return records


def assert_nothing_leaks(output: str, *forbidden: str) -> None:
    for value in (*SECRETS, *forbidden):
        assert value not in output, f"{value!r} appears in the logs"


def test_bot_run_logs_json_without_secrets_or_message_text():
    with (
        FakeDiscord(token=BOT_TOKEN, oauth_client_secret=CLIENT_SECRET, heartbeat_interval_ms=500) as fake,
        FakeLLM(token_delay=0) as llm,
    ):
        guild = fake.add_guild(name="Secret Guild", channels=["general"])
        channel = int(guild["channels"][0]["id"])
        target = fake.add_user("target", user_id=TARGET_ID)
        env = {
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "DEBUG",
            "DJANGO_SECRET_KEY": SECRET_KEY,
            "OPENAI_API_KEY": OPENAI_KEY,
            "OPENAI_API_BASE": llm.url,
            "TARGET_USER_ID": str(TARGET_ID),
        }
        bot = BotProcess(fake, **env)
        with bot:
            bot.wait_ready(timeout=60)
            fake.send_user_message(channel, "offline-question-quokka-7731", author=target)
            [offline] = fake.wait_for_messages(1, channel_id=channel, timeout=20)
            assert "offline-question-quokka-7731" in offline["content"]

            GuildSettings.objects.filter(guild__discord_id=int(guild["id"])).update(
                model="openai/gpt-4o-mini", streaming=False, version=50
            )
            llm.reply_with("llm-answer-narwhal-4410")
            fake.send_user_message(channel, "llm-question-axolotl-9902", author=target)
            replies = fake.wait_for_messages(2, channel_id=channel, timeout=60)
            assert replies[1]["content"] == "llm-answer-narwhal-4410", bot.tail()
            assert bot.stop() == 0
            output = bot.log()

    records = json_lines(output)
    assert any(r["name"] == "botcore.cogs.chat" for r in records), "the bot logged its answers"
    assert_nothing_leaks(
        output, "offline-question-quokka-7731", "llm-question-axolotl-9902", "llm-answer-narwhal-4410"
    )
    assert not [r for r in records if r["name"].startswith("discord") and r["levelname"] == "DEBUG"]


def test_web_run_logs_json_with_request_ids_and_no_secrets():
    server = WebProcess(
        LOG_FORMAT="json",
        LOG_LEVEL="DEBUG",
        DJANGO_SECRET_KEY=SECRET_KEY,
        DISCORD_CLIENT_ID="123456789",
        DISCORD_CLIENT_SECRET=CLIENT_SECRET,
        DISCORD_BOT_TOKEN=BOT_TOKEN,
        OPENAI_API_KEY=OPENAI_KEY,
    )
    with server:
        server.wait_ready()
        assert server.get("/")[0] == 200
        assert server.get("/accounts/login/")[0] == 200
        status, headers = server.get("/dashboard/", **{"X-Request-ID": "proxy-id-42"})
        assert status in {200, 302} and headers["X-Request-ID"] == "proxy-id-42"
        # An OAuth callback's query string carries a one-time code: it must not be logged.
        assert server.get("/missing/callback/?code=oauth-code-do-not-log&state=s")[0] == 404
        assert server.get("/api/v1/shards")[0] == 401  # returned, not raised: logged after the middleware
        server.stop()
        output = server.log()

    records = json_lines(output)
    assert_nothing_leaks(output, "oauth-code-do-not-log")
    access = [r for r in records if r["name"] == "parley.access"]
    assert {r["path"] for r in access} >= {"/", "/accounts/login/", "/dashboard/", "/missing/callback/"}
    assert [r["request_id"] for r in access if r["path"] == "/dashboard/"] == ["proxy-id-42"]
    request_lines = [r for r in records if r["name"] == "parley.access" or r["name"].startswith("django.")]
    assert any(r["name"] == "django.request" for r in request_lines), "the 404 is logged by Django too"
    for record in request_lines:
        assert record["request_id"] not in {"", "-"}, record
    assert {r["name"] for r in records} >= {"gunicorn.error", "uvicorn.error", "parley.access"}
