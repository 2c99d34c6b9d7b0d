"""The integration guides' examples (docs/integration/examples/) run here, so the guides cannot rot.

One section per guide, in the order of docs/integration/. The cog runs inside a real ParleyBot against the local
fake Discord server; the LLM example runs on the offline model and through litellm to the fake OpenAI server.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from pythonjsonlogger.json import JsonFormatter

from audit.models import AuditLog
from botcore.bot import ParleyBot
from botcore.settings_cache import SettingsCache
from config.logging import RequestIdFilter, logging_config, request_id_var
from docs.integration.examples.channel_config import channel_settings, settings_in_channel
from docs.integration.examples.shard_alerts import ShardAlerts, crowded_shards, shard_alerts
from docs.integration.examples.summarize import INSTRUCTIONS, summarize, summary_reply
from guilds import services
from guilds.effective import Effective, SettingsSnapshot
from guilds.models import DEFAULT_SYSTEM_PROMPT, Channel, ChannelSettings, Guild, GuildSettings
from llm.answering import Asker, Outcome
from llm.errors import LLMRateLimited, LLMUnavailable, user_notice
from llm.limits import LimitGate
from llm.models import Usage
from tests.conftest import auth_queries
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.llm_server import FakeLLM
from tests.support import ROOT, run_python, subprocess_env

pytestmark = [
    # litellm's pydantic models warn while their schemas are built (see tests/test_llm_client.py).
    pytest.mark.filterwarnings("ignore:.*`ReadOnly` qualifier:UserWarning"),
    pytest.mark.filterwarnings("ignore:Accessing the '.*' attribute on the instance is deprecated"),
]


EXAMPLES = ROOT / "docs" / "integration" / "examples"
OFFLINE = "offline/parley-offline"
ARTICLE = (
    "Parley is a self-hosted chat bot for Discord. It answers in the channels an admin allows, with the model "
    "and prompt chosen in a web dashboard, and it records every call so that owners can follow their costs."
)


# --- adding-a-cog.md ---------------------------------------------------------------------------------------------


async def eventually(check: Callable[[], Awaitable[object]], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def parley_bot(fake: FakeDiscord, *extensions: str) -> AsyncIterator[ParleyBot]:
    """The real bot in this test's event loop: its own cogs from botcore/cogs/, plus ``extensions``."""
    restore = fake.patch_discord()
    bot = ParleyBot(shard_count=1, identify_delay=0)
    try:
        async with bot:
            for name in extensions:
                await bot.load_extension(name)
            task = asyncio.create_task(bot.start(fake.token))

            async def ready() -> bool:
                if task.done():
                    task.result()  # start() failed: raise its error
                return bot.is_ready()

            await eventually(ready)
            yield bot
            await bot.close()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 5)
    finally:
        restore()


@pytest.mark.e2e
@pytest.mark.asyncio
@pytest.mark.django_db(
    transaction=True
)  # the bot's ORM calls run in worker threads: they need committed rows
async def test_example_cog_answers_ping_and_its_keyword(settings):
    settings.BOT_GUILD_READY_TIMEOUT = 0.1
    settings.BOT_SETTINGS_RECHECK_SECONDS = 0  # the save below applies to the very next message
    settings.DISCORD_DEV_GUILD_ID = 0
    with FakeDiscord(heartbeat_interval_ms=500) as fake:
        server = fake.add_guild(name="Cog Guild", channels=["general", "quiet"])
        general, quiet = (int(channel["id"]) for channel in server["channels"])
        async with parley_bot(fake, "docs.integration.examples.ping_cog") as bot:
            assert {"Chat", "Ping", "SlashCommands"} <= set(bot.cogs)
            await eventually(lambda: Guild.objects.filter(discord_id=int(server["id"])).aexists())
            synced = await fake.wait_for_async(lambda: fake.command_syncs)
            assert {"ask", "parley", "ping"} <= set(synced[-1]["names"])

            interaction = fake.dispatch_interaction("ping", channel_id=general)
            answer = await fake.wait_for_async(
                lambda: next(
                    (r for r in fake.interaction_responses if r["interaction_id"] == int(interaction["id"])),
                    None,
                )
            )
            assert answer["type"] == 4 and answer["data"]["flags"] & 64, "answered at once, ephemeral"
            assert answer["content"].startswith("Pong! Gateway latency ")
            assert (
                "This channel uses offline/parley-offline; you have asked Parley 0 time(s) today."
                in (answer["content"])
            )

            someone = fake.add_user("someone")
            asked = fake.send_user_message(general, "Parley ping", author=someone)
            reply = await fake.wait_for_async(lambda: replies_to(fake, asked))
            assert (
                reply["content"].startswith("Pong!") and "you have asked Parley 0 time(s)" in reply["content"]
            )
            assert reply["allowed_mentions"] == {"parse": [], "replied_user": True}

            # The same channel rules as the chat cog, read through the bot's settings cache.
            guild = await Guild.objects.aget(discord_id=int(server["id"]))
            await sync_to_async(services.settings_update)(
                guild=guild, actor=None, changes={"allowed_channel_ids": [general]}
            )
            elsewhere = fake.send_user_message(quiet, "parley ping", author=someone)
            here = fake.send_user_message(general, "parley ping", author=someone)
            await fake.wait_for_async(lambda: replies_to(fake, here))
            await asyncio.sleep(0.2)
            assert replies_to(fake, elsewhere) is None


def replies_to(fake: FakeDiscord, message: dict[str, Any]) -> dict[str, Any] | None:
    return next((m for m in fake.sent_messages if m["reply_to"] == int(message["id"])), None)


# --- using-the-llm-client.md -------------------------------------------------------------------------------------


def summarize_for(
    guild: Guild,
    text: str = ARTICLE,
    on_text: Callable[[str], Awaitable[None]] | None = None,
    **changes: Any,
) -> Outcome:
    """``summarize`` as a slash command would call it: the channel's settings, carol asking, the bot's gate."""
    settings = replace(SettingsSnapshot.of(Guild.objects.get(pk=guild.pk)).effective(None), **changes)
    asker = Asker(user_id=1003, channel_id=None, source=Usage.Source.SLASH)
    return async_to_sync(summarize)(text, settings=settings, asker=asker, gate=LimitGate(), on_text=on_text)


def test_summarize_with_the_offline_model_writes_a_usage_row(guild):
    outcome = summarize_for(guild)
    assert outcome.status == "answered" and outcome.reply is not None and not outcome.notice
    assert outcome.reply.model == OFFLINE and "offline model" in outcome.reply.text
    row = Usage.objects.get()  # written before summarize returned (record_later=False)
    assert (row.guild, row.user_discord_id, row.source, row.outcome) == (guild, 1003, "slash", "ok")
    assert (row.input_tokens, row.output_tokens) == (outcome.reply.input_tokens, outcome.reply.output_tokens)


def test_summarize_streaming_hands_over_the_text_as_it_grows(guild):
    seen: list[str] = []

    async def show(text: str) -> None:
        seen.append(text)

    settings = SettingsSnapshot.of(guild).effective(None)
    asker = Asker(user_id=1003, channel_id=None, source=Usage.Source.SLASH)
    outcome = async_to_sync(summarize)(
        ARTICLE, settings=settings, asker=asker, gate=LimitGate(), on_text=show
    )
    assert outcome.reply is not None
    # The offline model's answer is complete at once, so it arrives as one piece (fake_openai streams words).
    assert seen and seen[-1] == outcome.reply.text
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(seen))
    assert Usage.objects.get().outcome == "ok"


def test_summarize_is_refused_over_the_guilds_budget(guild):
    GuildSettings.objects.filter(guild=guild).update(daily_budget_usd=0)
    outcome = summarize_for(guild)
    assert (outcome.status, outcome.reply) == ("refused", None)
    assert "daily AI budget" in outcome.notice
    assert Usage.objects.get().outcome == "over_budget", "a refusal is recorded too"


@pytest.fixture
def fake_openai(settings) -> Iterator[FakeLLM]:
    """openai/* models go to the local fake OpenAI server (through litellm, over real HTTP)."""
    with FakeLLM(token_delay=0.01) as fake:
        settings.LLM_PROVIDERS = {
            **settings.LLM_PROVIDERS,
            "openai": {"api_key": "sk-test", "api_base": fake.url},
        }
        settings.LLM_TIMEOUT_SECONDS = 5.0
        settings.LLM_MAX_RETRIES = 1
        settings.LLM_RETRY_BACKOFF_SECONDS = 0.01
        yield fake


def test_summarize_through_a_provider(guild, fake_openai):
    fake_openai.reply_with("Parley is a Discord bot with a dashboard.")
    outcome = summarize_for(guild, model="openai/gpt-4o-mini")
    assert outcome.reply is not None and outcome.reply.text == "Parley is a Discord bot with a dashboard."
    sent = fake_openai.requests[0]
    assert not sent.stream, "without on_text, one answer in one piece"
    assert sent.messages == [
        {"role": "system", "content": INSTRUCTIONS.format(words=60)},
        {"role": "user", "content": ARTICLE},
    ], "the example's instructions replace the guild's prompt"
    assert (sent.body["temperature"], sent.body["max_tokens"]) == (0.2, 180)
    row = Usage.objects.get()
    assert row.model == "openai/gpt-4o-mini" and row.cost_usd == outcome.reply.cost_usd > 0


def test_summarize_streams_through_a_provider(guild, fake_openai):
    fake_openai.reply_with("Parley is a Discord bot with a dashboard.")
    seen: list[str] = []

    async def show(text: str) -> None:
        seen.append(text)

    outcome = summarize_for(guild, on_text=show, model="openai/gpt-4o-mini")
    assert fake_openai.requests[0].stream, "on_text asks for a stream"
    assert len(seen) > 1 and seen[-1] == "Parley is a Discord bot with a dashboard.", "the fake streams words"
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(seen))
    assert outcome.reply is not None and Usage.objects.get().outcome == "ok"


def test_summarize_failures_become_a_notice_and_a_usage_row(guild, fake_openai):
    fake_openai.enqueue("429", "429")  # LLM_MAX_RETRIES=1: both attempts are refused
    outcome = summarize_for(guild, model="openai/gpt-4o-mini")
    assert outcome.status == "failed" and isinstance(outcome.error, LLMRateLimited)
    assert outcome.error.attempts == 2 and outcome.notice == user_notice(outcome.error)
    row = Usage.objects.get()
    assert (row.outcome, row.cost_usd) == ("rate_limited", 0)


def test_the_client_alone_raises_typed_errors_and_the_example_records_them(guild, fake_openai):
    fake_openai.reply_with("A short summary.")
    reply = async_to_sync(summary_reply)(ARTICLE, model="openai/gpt-4o-mini", guild_pk=guild.pk)
    assert reply.text == "A short summary." and Usage.objects.get().outcome == "ok"

    fake_openai.enqueue("429", "429")
    with pytest.raises(LLMRateLimited) as failure:
        async_to_sync(summary_reply)(ARTICLE, model="openai/gpt-4o-mini", guild_pk=guild.pk)
    assert failure.value.kind == "rate_limited" and failure.value.attempts == 2
    # A provider without an API key fails before any network call, typed, and is recorded too.
    with pytest.raises(LLMUnavailable):
        async_to_sync(summary_reply)(ARTICLE, model="anthropic/claude-haiku-4-5")
    outcomes = list(Usage.objects.order_by("id").values_list("outcome", flat=True))
    assert outcomes == ["ok", "rate_limited", "unavailable"]


def test_the_examples_never_import_litellm():
    """The web process imports these modules (the views above all): litellm must stay out until a call needs it."""
    modules = sorted(p.stem for p in EXAMPLES.glob("*.py") if p.stem != "__init__")
    code = (
        "import django, importlib, sys; django.setup(); "
        f"[importlib.import_module('docs.integration.examples.' + m) for m in {modules!r}]; "
        "print('litellm' in sys.modules)"
    )
    result = run_python(code, subprocess_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"


# --- logging-and-environment.md ----------------------------------------------------------------------------------

ALERT_VARIABLES = ("SHARD_ALERTS", "SHARD_GUILD_WARNING", "ALERT_WEBHOOK_URL", "ALERT_WEBHOOK_URL_FILE")
WEBHOOK = "https://discord.com/api/webhooks/1/webhook-token-do-not-log"


@pytest.fixture
def clean_env(monkeypatch) -> pytest.MonkeyPatch:
    for name in ALERT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_settings_come_from_the_environment_and_secret_files(clean_env, tmp_path: Path):
    assert shard_alerts() == ShardAlerts(enabled=True, guild_warning=1000, webhook_url=None)
    secret = tmp_path / "alert_webhook_url.txt"
    secret.write_text(WEBHOOK + "\n")
    clean_env.setenv("SHARD_GUILD_WARNING", "800")
    clean_env.setenv("ALERT_WEBHOOK_URL_FILE", str(secret))
    alerts = shard_alerts()
    assert (alerts.guild_warning, alerts.webhook_url) == (800, WEBHOOK)
    assert "webhook-token" not in repr(alerts)
    secret.write_text("CHANGE_ME\n")  # what `make secrets` writes: stands for "not configured"
    assert shard_alerts().webhook_url is None


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SHARD_ALERTS", "sometimes", "SHARD_ALERTS must be true or false"),
        ("SHARD_GUILD_WARNING", "lots", "SHARD_GUILD_WARNING must be an integer"),
        ("SHARD_GUILD_WARNING", "3000", "SHARD_GUILD_WARNING must be between 1 and 2500"),
        ("ALERT_WEBHOOK_URL_FILE", "/nonexistent/secret.txt", "ALERT_WEBHOOK_URL_FILE points to"),
    ],
)
def test_a_malformed_value_names_its_variable(clean_env, name, value, message):
    clean_env.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=message):
        shard_alerts()


def json_line(record: logging.LogRecord) -> dict[str, object]:
    """The record as LOG_FORMAT=json writes it: the formatter and request-id filter of config/logging.py."""
    spec = logging_config(log_format="json", level="INFO", discord_level="WARNING")["formatters"]["json"]
    RequestIdFilter().filter(record)
    return json.loads(JsonFormatter(spec["fmt"], reserved_attrs=spec["reserved_attrs"]).format(record))


def test_warnings_are_structured_carry_the_request_id_and_no_secret(caplog):
    alerts = ShardAlerts(enabled=True, guild_warning=1000, webhook_url=WEBHOOK)
    token = request_id_var.set("req-42")  # what RequestIdMiddleware does for every web request
    try:
        with caplog.at_level(logging.INFO, logger="docs.integration.examples.shard_alerts"):
            assert crowded_shards({0: 1200, 1: 300, 2: 1000}, alerts) == [0]
        # Only this module's records: a server thread of an earlier test may still be logging.
        [record] = [r for r in caplog.records if r.name == "docs.integration.examples.shard_alerts"]
        line = json_line(record)
    finally:
        request_id_var.reset(token)
    assert line["levelname"] == "WARNING" and line["request_id"] == "req-42"
    assert (line["shard_id"], line["guild_count"], line["alert_webhook"]) == (0, 1200, True)
    assert str(line["message"]).startswith("shard 0 carries 1200 guilds")
    assert "webhook-token" not in caplog.text and "webhook-token" not in json.dumps(line)
    assert crowded_shards({0: 5000}, ShardAlerts(enabled=False, guild_warning=1000, webhook_url=None)) == []


# --- adding-a-json-endpoint.md -----------------------------------------------------------------------------------


@pytest.fixture
def example_urls(settings) -> None:
    settings.ROOT_URLCONF = "docs.integration.examples.urls"


def prompt_url(guild: Guild) -> str:
    return f"/api/v1/guilds/{guild.discord_id}/prompt"


def post_json(client: Client, url: str, body: object, headers: dict[str, str] | None = None) -> Any:
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post(url, data=data, content_type="application/json", headers=headers)


def stored_prompt(guild: Guild) -> str:
    return GuildSettings.objects.get(guild=guild).system_prompt


def test_prompt_api_it_works(client, guild, bob, carol, example_urls):
    client.force_login(carol)  # any member reads
    response = client.get(prompt_url(guild))
    assert response.status_code == 200
    assert response.json() == {
        "guild_id": str(guild.discord_id),
        "system_prompt": DEFAULT_SYSTEM_PROMPT,
        "version": 1,
    }
    client.force_login(bob)  # admins write
    response = post_json(client, prompt_url(guild), {"system_prompt": "Talk like a pirate.", "version": 1})
    assert response.status_code == 200
    assert response.json()["system_prompt"] == "Talk like a pirate." and response.json()["version"] == 2
    entry = AuditLog.objects.get(action="settings.update")
    assert (entry.guild, entry.actor) == (guild, bob)
    assert entry.changes == {"system_prompt": [DEFAULT_SYSTEM_PROMPT, "Talk like a pirate."]}


def test_prompt_api_it_checks_membership(client, guild, dave, example_urls):
    assert client.get(prompt_url(guild)).json()["error"] == "not_authenticated"
    client.force_login(dave)
    for response in (
        client.get(prompt_url(guild)),
        post_json(client, prompt_url(guild), {"system_prompt": "x"}),
    ):
        assert response.status_code == 404 and response.json()["error"] == "not_found"
    missing = client.get("/api/v1/guilds/999/prompt")
    assert missing.status_code == 404 and missing.json() == response.json(), "no guild or not yours: the same"
    assert stored_prompt(guild) == DEFAULT_SYSTEM_PROMPT


def test_prompt_api_it_requires_role(client, guild, carol, example_urls):
    client.force_login(carol)
    response = post_json(client, prompt_url(guild), {"system_prompt": "Users cannot do this."})
    assert response.status_code == 403 and response.json()["error"] == "forbidden"
    assert stored_prompt(guild) == DEFAULT_SYSTEM_PROMPT and not AuditLog.objects.exists()


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("not json", 400, "bad_json"),
        ('["a", "list"]', 400, "bad_json"),
        ({"system_prompt": 42}, 400, "bad_json"),
        ({"system_prompt": "ok", "version": "1"}, 400, "bad_json"),
        ({"system_prompt": "x" * 4001}, 422, "invalid"),
        ({"system_prompt": "ok", "version": 7}, 409, "stale"),
    ],
)
def test_prompt_api_it_rejects_bad_input(client, guild, bob, example_urls, body, status, code):
    client.force_login(bob)
    response = post_json(client, prompt_url(guild), body)
    assert (response.status_code, response.json()["error"]) == (status, code)
    if code == "invalid":
        assert "4001 characters" in response.json()["fields"]["system_prompt"][0]
    assert stored_prompt(guild) == DEFAULT_SYSTEM_PROMPT and not AuditLog.objects.exists()


def test_prompt_api_post_needs_the_csrf_token(guild, bob, example_urls, example_templates):
    browser = Client(enforce_csrf_checks=True)  # the test client skips CSRF checks unless asked
    browser.force_login(bob)
    assert post_json(browser, prompt_url(guild), {"system_prompt": "Forged."}).status_code == 403
    browser.get(channels_url(guild))  # any dashboard page sets the csrftoken cookie
    token = browser.cookies["csrftoken"].value
    response = post_json(
        browser, prompt_url(guild), {"system_prompt": "Sent by our page."}, headers={"X-CSRFToken": token}
    )
    assert response.status_code == 200 and stored_prompt(guild) == "Sent by our page."


# --- adding-a-dashboard-page.md ----------------------------------------------------------------------------------


@pytest.fixture
def example_templates(settings, example_urls) -> None:
    """The example's template directory beside templates/ (a real page puts its template in templates/<app>/)."""
    engine = settings.TEMPLATES[0]
    settings.TEMPLATES = [{**engine, "DIRS": [*engine["DIRS"], EXAMPLES / "templates"]}]


def channels_url(guild: Guild) -> str:
    return f"/dashboard/guilds/{guild.discord_id}/channels/"


@pytest.fixture
def thread(guild: Guild) -> Channel:
    """A thread under #bots, which has its own prompt and model."""
    bots = Channel.objects.get(guild=guild, name="bots")
    bots.guild.channel_settings.create(channel_id=bots.discord_id, system_prompt="Only talk about bots.")
    return Channel.objects.create(
        guild=guild,
        discord_id=333333333333333333,
        name="bot-thread",
        kind=Channel.Kind.PUBLIC_THREAD,
        parent_discord_id=bots.discord_id,
    )


def test_channels_page_it_works(client, guild, carol, thread, example_templates):
    GuildSettings.objects.filter(guild=guild).update(allowed_channel_ids=[thread.parent_discord_id])
    client.force_login(carol)
    response = client.get(channels_url(guild))
    assert response.status_code == 200
    html = response.content.decode()
    assert '<nav class="sidebar"' in html and "Parley Test Server" in html, "the guild sidebar"
    rows = {row.channel.name: row for row in response.context["rows"]}
    assert not rows["general"].answers and rows["bots"].answers and rows["bot-thread"].answers
    assert rows["general"].source == "guild" and rows["general"].prompt == DEFAULT_SYSTEM_PROMPT
    assert (rows["bots"].source, rows["bot-thread"].source) == ("channel", "parent")
    assert rows["bot-thread"].prompt == "Only talk about bots." and "↳ bot-thread" in html


def test_channels_page_htmx_gets_only_the_table(client, guild, carol, thread, example_templates):
    client.force_login(carol)
    response = client.get(channels_url(guild), {"q": "bot"}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="channel-table">') and "<html" not in html
    assert "bot-thread" in html and "general" not in html


def test_channels_page_it_checks_membership(client, guild, dave, example_templates):
    assert client.get(channels_url(guild)).status_code == 302, "anonymous: to the login page"
    client.force_login(dave)
    assert client.get(channels_url(guild)).status_code == 404


def test_channels_page_query_count_is_constant(
    client, guild, alice, example_templates, django_assert_num_queries
):
    client.force_login(alice)
    client.get(channels_url(guild))  # warm the session and template caches
    with django_assert_num_queries(auth_queries() + 3):  # membership+guild+settings, channels, overrides
        assert client.get(channels_url(guild)).status_code == 200
    Channel.objects.bulk_create(
        Channel(guild=guild, discord_id=400000000000000000 + i, name=f"channel-{i}") for i in range(30)
    )
    with django_assert_num_queries(auth_queries() + 3):
        assert client.get(channels_url(guild)).status_code == 200


# --- loading-bot-configuration.md --------------------------------------------------------------------------------


def test_channel_settings_follow_overrides_threads_and_saves(
    guild, alice, thread, settings, django_assert_num_queries
):
    settings.LLM_PROVIDERS = {**settings.LLM_PROVIDERS, "openai": {"api_key": "sk-test", "api_base": None}}
    bots = thread.parent_discord_id
    services.channel_override_set(
        guild=guild,
        actor=alice,
        channel_id=bots,
        system_prompt="Only talk about bots.",
        model="openai/gpt-4o-mini",
    )
    general = Channel.objects.get(guild=guild, name="general").discord_id
    cache = SettingsCache(recheck_seconds=0)  # the bot has one, bot.settings (1 s by default)

    def seen_from(channel_id: int, parent_id: int | None = None) -> Effective | None:
        return async_to_sync(channel_settings)(cache, guild.discord_id, channel_id, parent_id=parent_id)

    in_general = seen_from(general)
    assert in_general is not None and (in_general.guild_pk, in_general.channel_id) == (guild.pk, general)
    assert (in_general.model, in_general.system_prompt, in_general.fallback_model) == (
        OFFLINE,
        DEFAULT_SYSTEM_PROMPT,
        "",
    )
    in_thread = seen_from(thread.discord_id, parent_id=bots)
    assert in_thread is not None and in_thread.channel_id == bots, "a thread is its parent channel"
    assert (in_thread.model, in_thread.system_prompt) == ("openai/gpt-4o-mini", "Only talk about bots.")

    with django_assert_num_queries(1):  # nothing changed: one look at (settings pk, version)
        seen_from(general)
    services.settings_update(guild=guild, actor=alice, changes={"allowed_channel_ids": [general]})
    with django_assert_num_queries(5):  # the version moved: the settings, both overrides and the keys again
        assert seen_from(thread.discord_id, parent_id=bots) is None, "#bots is no longer allowed"
    assert seen_from(general) is not None

    Guild.objects.filter(pk=guild.pk).update(is_active=False)  # the bot left the guild
    assert seen_from(general) is None
    assert async_to_sync(channel_settings)(cache, 42, general) is None


def test_settings_in_channel_needs_no_database():
    snapshot = SettingsSnapshot(
        guild_id=2,
        row=GuildSettings(model="", allowed_channel_ids=[10, 11]),  # an empty model: the instance default
        overrides={10: ChannelSettings(channel_id=10, system_prompt="Be brief.", model="")},
    )
    here = settings_in_channel(snapshot, 10)
    assert here is not None
    assert (here.channel_id, here.model, here.system_prompt) == (10, OFFLINE, "Be brief.")
    beside = settings_in_channel(snapshot, 11)
    assert beside is not None and beside.system_prompt == DEFAULT_SYSTEM_PROMPT, "no override: the guild's"
    assert settings_in_channel(snapshot, 12) is None, "not an allowed channel"
    snapshot.row.enabled = False
    assert settings_in_channel(snapshot, 10) is None, "Parley is off in this guild"
