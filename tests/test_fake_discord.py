"""The fake Discord server speaks enough REST, gateway and OAuth2 for an unmodified discord.py 2.7.1 client.

No database: these tests only drive discord.py and aiohttp against ``tests.fakes.discord_server``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import discord
import discord.gateway
import discord.http
import pytest
import yarl
from discord import app_commands
from discord.ext import commands

from tests.fakes.discord_server import FakeDiscord, main, shard_of


@pytest.fixture
def fake() -> Iterator[FakeDiscord]:
    old = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    server = FakeDiscord().start()
    restore = server.patch_discord()
    try:
        yield server
    finally:
        restore()
        server.stop()
        # Other tests in the same process must see the real Discord URLs again.
        assert old == (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)


def _intents() -> discord.Intents:
    intents = discord.Intents.none()
    intents.guilds = intents.guild_messages = intents.message_content = intents.dm_messages = True
    return intents


def _client(shard_count: int | None = 2, cls: type[Any] = discord.AutoShardedClient, **kwargs: Any) -> Any:
    client = cls(
        intents=_intents(),
        shard_count=shard_count,
        chunk_guilds_at_startup=False,
        max_messages=None,
        member_cache_flags=discord.MemberCacheFlags.none(),
        guild_ready_timeout=0.1,
        **kwargs,
    )

    async def no_identify_wait(shard_id: int | None, *, initial: bool = False) -> None:
        return None  # the default sleeps 5 s before every non-initial IDENTIFY

    client.before_identify_hook = no_identify_wait
    return client


@contextlib.asynccontextmanager
async def running(client: discord.Client, token: str) -> AsyncIterator[discord.Client]:
    task = asyncio.create_task(client.start(token))
    try:
        deadline = time.monotonic() + 10
        while not client.is_ready():
            if task.done():
                task.result()  # raises the start() error
            assert time.monotonic() < deadline, "client never became ready"
            await asyncio.sleep(0.02)
        yield client
    finally:
        await client.close()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)


@pytest.mark.asyncio
async def test_two_shards_get_ready_with_their_guilds_and_see_joins(fake: FakeDiscord) -> None:
    g0 = fake.add_guild(name="zero", shard=(0, 2))
    g1 = fake.add_guild(name="one", shard=(1, 2), channels=["general", {"name": "t", "type": 11}])
    joined: list[int] = []
    client = _client(2)
    client.event(_coro(lambda guild: joined.append(guild.id), "on_guild_join"))

    async with running(client, fake.token):
        assert {g.id for g in client.guilds} == {int(g0["id"]), int(g1["id"])}
        assert client.get_guild(int(g0["id"])).shard_id == 0
        assert client.get_guild(int(g1["id"])).shard_id == 1
        assert isinstance(client.get_channel(int(g0["channels"][0]["id"])), discord.TextChannel)
        assert isinstance(client.get_channel(int(g1["threads"][0]["id"])), discord.Thread)
        assert client.user.id == int(fake.bot_user["id"]) and client.application_id == fake.app_id
        assert sorted(i["shard"] for i in fake.identifies) == [[0, 2], [1, 2]]
        assert fake.identifies[0]["intents"] == _intents().value and fake.identifies[0]["compress"]
        assert fake.connections == {0: 1, 1: 1}

        late = fake.add_guild(name="late", shard=(1, 2))
        await fake.wait_for_async(lambda: joined == [int(late["id"])])
        assert client.get_guild(int(late["id"])).shard_id == 1
        fake.update_guild(int(late["id"]), name="renamed")
        await fake.wait_for_async(lambda: client.get_guild(int(late["id"])).name == "renamed")
        fake.remove_guild(int(late["id"]))
        await fake.wait_for_async(lambda: client.get_guild(int(late["id"])) is None)


def _coro(fn: Any, name: str) -> Any:
    async def handler(*args: Any) -> None:
        fn(*args)

    handler.__name__ = name
    return handler


@pytest.mark.asyncio
async def test_user_message_reply_and_dm(fake: FakeDiscord) -> None:
    guild = fake.add_guild(shard=(1, 2))
    channel_id = int(guild["channels"][0]["id"])
    seen: list[discord.Message] = []
    fetched: list[discord.Message] = []
    client = _client(2)

    @client.event
    async def on_message(message: discord.Message) -> None:
        if message.author == client.user:
            return
        seen.append(message)
        if message.reference is not None and message.reference.message_id is not None:
            fetched.append(await message.channel.fetch_message(message.reference.message_id))
        await message.channel.send(
            f"echo: {message.content}", allowed_mentions=discord.AllowedMentions.none(), reference=message
        )

    async with running(client, fake.token):
        bot_id = fake.bot_user["id"]
        sent = fake.send_user_message(channel_id, f"<@{bot_id}> hello")
        rec = (await fake.wait_for_messages_async(1, channel_id))[0]
        assert rec["content"] == f"echo: <@{bot_id}> hello"
        assert rec["allowed_mentions"] == discord.AllowedMentions.none().to_dict()
        assert rec["reply_to"] == int(sent["id"]) and rec["message_reference"]["message_id"] == int(
            sent["id"]
        )
        msg = seen[0]
        assert msg.guild is not None and msg.guild.id == int(guild["id"])
        assert msg.author.name == "alice" and not msg.author.bot
        assert client.user in msg.mentions and isinstance(msg.author, discord.Member)

        # A user replies to the bot: reply chain, reply ping, and fetch_message through REST.
        fake.send_user_message(channel_id, "and again", reply_to=rec["id"])
        await fake.wait_for_messages_async(2, channel_id)
        assert seen[1].reference is not None and isinstance(seen[1].reference.resolved, discord.Message)
        assert seen[1].reference.resolved.content == rec["content"]
        assert client.user in seen[1].mentions and fetched[0].id == rec["id"]

        dm = fake.create_dm_channel(fake.default_user)
        fake.send_user_message(int(dm["id"]), "private")
        [dm_rec] = await fake.wait_for_messages_async(1, int(dm["id"]))
        assert seen[2].guild is None and dm_rec["content"] == "echo: private"


@pytest.mark.asyncio
async def test_forced_disconnect_resumes_and_replays(fake: FakeDiscord) -> None:
    guild = fake.add_guild(shard=(0, 2))
    channel_id = int(guild["channels"][0]["id"])
    contents: list[str] = []
    resumed: list[int] = []
    client = _client(2)
    client.event(_coro(lambda m: contents.append(m.content), "on_message"))
    client.event(_coro(resumed.append, "on_shard_resumed"))

    async with running(client, fake.token):
        session_0 = next(i["session_id"] for i in fake.identifies if i["shard"] == [0, 2])
        assert fake.disconnect_shard(0) == 1
        fake.send_user_message(channel_id, "while away")  # buffered, replayed on RESUME
        await fake.wait_for_async(lambda: resumed == [0])
        assert fake.resume_count == 1 and fake.identify_count == 2
        assert fake.resumes[0]["session_id"] == session_0 and fake.resumes[0]["replayed"] >= 1
        await fake.wait_for_async(lambda: contents == ["while away"])
        fake.send_user_message(channel_id, "after")
        await fake.wait_for_async(lambda: contents == ["while away", "after"])
        assert fake.connections == {0: 1, 1: 1}

        # A forgotten session makes the RESUME fail (op 9), so the shard IDENTIFYs again.
        fake.disconnect_shard(1, forget_session=True)
        await fake.wait_for_async(lambda: fake.identify_count == 3 and fake.connections.get(1) == 1)
        assert fake.identifies[-1]["shard"] == [1, 2]


@pytest.mark.asyncio
async def test_zombie_connection_is_closed_and_resumed(fake: FakeDiscord) -> None:
    fake.add_guild()
    fake.heartbeat_interval_ms = 100
    fake.ack_heartbeats = (
        False  # nothing comes back, so discord.py's keep-alive gives up after heartbeat_timeout
    )
    client = _client(1, heartbeat_timeout=0.5)
    async with running(client, fake.token):
        await fake.wait_for_async(lambda: fake.resume_count >= 1)
        fake.ack_heartbeats = True
        assert fake.identify_count == 1


@pytest.mark.asyncio
async def test_edits_typing_files_and_limits(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    channel_id = int(guild["channels"][0]["id"])
    client = _client(1)
    async with running(client, fake.token):
        channel = client.get_channel(channel_id)
        async with channel.typing():
            message = await channel.send("draft", file=discord.File(io.BytesIO(b"data"), "notes.txt"))
        await message.edit(content="final")
        assert fake.typing_calls[0]["channel_id"] == channel_id
        assert fake.sent_messages[0]["attachments"] == ["notes.txt"] and message.attachments[0].size == 4
        assert [(e["id"], e["content"]) for e in fake.edits] == [(message.id, "final")]
        with pytest.raises(discord.HTTPException) as too_long:
            await channel.send("x" * 2001)
        assert too_long.value.code == 50035
        history = [m.content async for m in channel.history(limit=10)]
        assert history == ["final"]
        await message.delete()
        assert fake.deletes[0]["id"] == message.id


@pytest.mark.asyncio
async def test_rate_limited_send_is_retried(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    channel_id = int(guild["channels"][0]["id"])
    fake.fail_next("POST", r"^/channels/\d+/messages$", status=429, retry_after=0.3)
    client = _client(1)
    async with running(client, fake.token):
        started = time.monotonic()
        message = await client.get_channel(channel_id).send(
            "through", allowed_mentions=discord.AllowedMentions.none()
        )
        assert time.monotonic() - started >= 0.3
        assert [r["status"] for r in fake.requests if r["method"] == "POST"] == [429, 200]
        assert [m["id"] for m in fake.sent_messages] == [message.id]


@pytest.mark.asyncio
async def test_plain_client_and_gateway_bot_discovery(fake: FakeDiscord) -> None:
    guilds = [fake.add_guild(name=f"g{i}", shard=(i, 2)) for i in range(2)]
    # A plain Client connects to DEFAULT_GATEWAY without a shard field (the fake treats it as [0, 1]).
    plain = _client(None, discord.Client)
    async with running(plain, fake.token):
        assert len(plain.guilds) == 2 and fake.identifies[-1]["shard"] == [0, 1]
    # AutoShardedClient without shard_count asks GET /gateway/bot for the count and the URL.
    fake.recommended_shards = 2
    auto = _client(None)
    async with running(auto, fake.token):
        assert auto.shard_count == 2 and {g.shard_id for g in auto.guilds} == {0, 1}
        assert sorted(i["shard"] for i in fake.identifies[1:]) == [[0, 2], [1, 2]]
    assert {g["name"] for g in guilds} == {g.name for g in auto.guilds}


@pytest.mark.asyncio
async def test_bad_token_is_a_login_failure(fake: FakeDiscord) -> None:
    client = _client(1)
    with pytest.raises(discord.LoginFailure):
        await client.login("not-the-token")
    await client.close()
    assert fake.requests[-1]["status"] == 401


@pytest.mark.asyncio
async def test_slash_command_sync_and_responses(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    channel_id = int(guild["channels"][0]["id"])
    bot = _client(1, commands.AutoShardedBot, command_prefix=commands.when_mentioned)

    @bot.tree.command(description="Ping")
    async def ping(interaction: discord.Interaction, word: str) -> None:
        await interaction.response.send_message(f"pong {word}")

    @bot.tree.command(description="Slow")
    async def slow(interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.edit_original_response(content="done")
        await interaction.followup.send("more")

    async with running(bot, fake.token):
        synced = await bot.tree.sync()
        assert {c.name for c in synced} == {"ping", "slow"} and fake.command_syncs[0]["guild_id"] is None
        assert isinstance(synced[0], app_commands.AppCommand)
        fake.dispatch_interaction("ping", {"word": "hi"}, channel_id=channel_id)
        await fake.wait_for_async(lambda: fake.interaction_responses)
        assert fake.interaction_responses[0]["type"] == 4
        assert fake.interaction_responses[0]["content"] == "pong hi"
        fake.dispatch_interaction("slow", channel_id=channel_id)
        await fake.wait_for_async(lambda: len(fake.interaction_responses) == 4)
        kinds = [(r["kind"], r.get("type")) for r in fake.interaction_responses[1:]]
        assert kinds == [("callback", 5), ("patch_@original", None), ("followup", None)]
        assert [m["content"] for m in fake.sent_messages] == ["pong hi", "done", "more"]


@pytest.mark.asyncio
async def test_oauth_flow(fake: FakeDiscord) -> None:
    guild = fake.add_guild(name="Mine")
    user = fake.set_oauth_user(
        {"id": 4242, "username": "bob"}, guilds=[{**guild, "owner": True, "permissions": 32}]
    )
    assert user is not None
    verifier = "v" * 50
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    redirect = "http://testserver/accounts/discord/login/callback/"
    async with aiohttp.ClientSession() as http:
        query = {"client_id": fake.oauth_client_id, "redirect_uri": redirect, "response_type": "code",
                 "scope": "identify email guilds", "state": "st4te", "code_challenge": challenge,
                 "code_challenge_method": "S256"}  # fmt: skip
        resp = await http.get(f"{fake.url}/api/oauth2/authorize", params=query, allow_redirects=False)
        assert resp.status == 302
        location = yarl.URL(resp.headers["Location"])
        assert str(location.with_query(None)) == redirect and location.query["state"] == "st4te"
        form = {"client_id": fake.oauth_client_id, "client_secret": fake.oauth_client_secret,
                "grant_type": "authorization_code", "code": location.query["code"], "redirect_uri": redirect,
                "code_verifier": verifier}  # fmt: skip
        bad = await http.post(f"{fake.url}/api/oauth2/token", data={**form, "client_secret": "nope"})
        assert bad.status == 401
        resp = await http.post(f"{fake.url}/api/oauth2/token", data=form)
        token = await resp.json()
        assert (
            resp.status == 200
            and token["token_type"] == "Bearer"
            and token["scope"] == "identify email guilds"
        )
        reused = await http.post(f"{fake.url}/api/oauth2/token", data=form)
        assert reused.status == 400

        bearer = {"Authorization": f"Bearer {token['access_token']}"}
        for base in ("/api", "/api/v10"):
            me = await http.get(f"{fake.url}{base}/users/@me", headers=bearer)
            assert me.headers["Content-Type"] == "application/json"
            assert (await me.json())["id"] == "4242" and (await me.json())["email"] == user["email"]
            guilds = await (await http.get(f"{fake.url}{base}/users/@me/guilds", headers=bearer)).json()
            assert guilds == [{"id": guild["id"], "name": "Mine", "icon": None, "banner": None, "owner": True,
                               "permissions": "32", "features": []}]  # fmt: skip
        nobody = await http.get(f"{fake.url}/api/users/@me", headers={"Authorization": "Bearer wrong"})
        assert nobody.status == 401
        bot_me = await http.get(
            f"{fake.url}/api/v10/users/@me", headers={"Authorization": f"Bot {fake.token}"}
        )
        assert (await bot_me.json())["bot"] is True
    assert [r["endpoint"] for r in fake.oauth_requests][:3] == ["authorize", "token", "token"]


@pytest.mark.asyncio
async def test_gateway_frames_are_zlib_stream_and_rest_json_is_exact(fake: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{fake.ws_url}?v=10&encoding=json&compress=zlib-stream") as ws:
            frame = await ws.receive_bytes(timeout=5)
            assert frame.endswith(b"\x00\x00\xff\xff")
            assert zlib.decompressobj().decompress(frame).startswith(b'{"op":10,')
        resp = await http.get(
            f"{fake.url}/api/v10/gateway/bot", headers={"Authorization": f"Bot {fake.token}"}
        )
        assert resp.headers["Content-Type"] == "application/json" and "X-RateLimit-Bucket" in resp.headers
        assert (await resp.json())["url"] == fake.ws_url
        missing = await http.get(
            f"{fake.url}/api/v10/channels/1", headers={"Authorization": f"Bot {fake.token}"}
        )
        assert missing.status == 404 and (await missing.json())["code"] == 10003


def test_control_api_from_another_process_view(fake: FakeDiscord, capsys: pytest.CaptureFixture[str]) -> None:
    guild = fake.add_guild(shard=(1, 4))
    assert shard_of(int(guild["id"]), 4) == 1
    channel = guild["channels"][0]["id"]
    assert (
        main(["send", "--port", str(fake.port), "--channel", channel, "--author", "alice", "hi there"]) == 0
    )
    assert f'"channel_id": "{channel}"' in capsys.readouterr().out
    assert [m["content"] for m in fake.messages.values()] == ["hi there"]
    assert main(["state", "--port", str(fake.port)]) == 0
    assert guild["id"] in capsys.readouterr().out
