"""A local fake of Discord (REST v10, gateway, OAuth2) that an unmodified discord.py 2.7.1 client talks to.

Why: the bot and the dashboard must be testable end to end without the internet. ``FakeDiscord`` runs an
aiohttp server on 127.0.0.1 in its own thread (its own asyncio loop), so sync pytest tests, async tests that run
discord.py in the test loop, and bot subprocesses (``manage.py runbot``) can all use it at once.

Pointing a client at it (all three are needed; ``fake.patch_discord()`` does the first two in-process)::

    discord.http.Route.BASE = f"{fake.url}/api/v10"          # a str; Route builds URLs as BASE + path
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.ws_url)  # must be a yarl.URL, not a str
    token = fake.token                                         # any other token gets 401 -> LoginFailure

``DEFAULT_GATEWAY`` is used by ``Client``, by ``AutoShardedClient(shard_count=N)`` and after an invalid session;
``AutoShardedClient`` without ``shard_count`` takes the URL from ``GET /gateway/bot`` (``fake.ws_url``). RESUMEs go
to READY's ``resume_gateway_url``, which is ``fake.ws_url`` too. For a bot subprocess use ``fake.client_env()``
(``DISCORD_BOT_TOKEN``, ``DISCORD_API_BASE``, ``DISCORD_GATEWAY_URL``, ``DISCORD_OAUTH_BASE``, ``DISCORD_CLIENT_ID``,
``DISCORD_CLIENT_SECRET``). Compression: discord.py 2.7.1 asks for ``compress=zlib-stream``; it would ask for
``zstd-stream`` if ``zstandard`` (or Python 3.14's ``compression.zstd``) were importable. The fake serves only
zlib-stream and uncompressed, and closes a zstd-stream socket with code 4000, so keep zstandard out of the venv.

Python API (thread-safe; call from any thread but the server's): ``add_guild``, ``remove_guild``,
``update_guild``, ``add_user``, ``create_dm_channel``, ``send_user_message``, ``dispatch_interaction``,
``disconnect_shard``/``disconnect_all``, ``fail_next``, ``set_oauth_user``, ``add_role``, ``set_member_roles``;
records ``sent_messages``, ``edits``, ``deletes``, ``typing_calls``, ``interaction_responses``, ``command_syncs``,
``oauth_requests``, ``requests``, ``threads_created`` (threads the bot opened from a message),
``identifies``/``identify_count``/``identifies_per_shard``, ``invalid_sessions``/``invalid_session_count``,
``resumes``/``resume_count``, ``connections``. Waiting: ``wait_for`` and
``wait_for_messages`` block the calling thread, so a test that runs discord.py in its own loop must use
``await wait_for_async(...)`` / ``await wait_for_messages_async(...)`` instead. Payload dicts returned by the API
are Discord JSON (string ids); records use ints so they compare with discord.py objects.

IDENTIFY rate: like Discord, ``/gateway/bot`` reports ``max_concurrency`` and an IDENTIFY sooner than
``identify_interval`` seconds after the last one accepted in its bucket (``shard_id % max_concurrency``) gets an
invalid session (op 9, ``d: false``) and no READY. The class leaves it off (``identify_interval=0``) so tests that
start many shards at once stay fast; the command line enforces Discord's 5 s unless told otherwise.

Standalone, for developers (prints the env vars to point the bot at it)::

    python -m tests.fakes.discord_server --port 8765 --guilds 2 --shards 2
    python -m tests.fakes.discord_server send --port 8765 --channel C --author alice "hello"
    python -m tests.fakes.discord_server sent --port 8765          # what the bot sent
    python -m tests.fakes.discord_server disconnect --port 8765 --shard 0
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import hashlib
import itertools
import json
import math
import re
import secrets
import sys
import threading
import time
import urllib.request
import zlib
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlencode

from aiohttp import WSMsgType, web

from tests.support import BackgroundServer, wait_until, wait_until_async

T = TypeVar("T")
Json = dict[str, Any]

DISCORD_EPOCH_MS = 1420070400000
API = "/api/v10"
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15
ALL_PERMISSIONS = str((1 << 50) - 1)
_INCREMENT = itertools.count(1)
# Routes that do not take the bot token: interaction webhooks carry their own token, OAuth uses Bearer/basic.
_NO_BOT_AUTH = re.compile(
    r"^/(interactions/|webhooks/|oauth2/(token|authorize)|users/@me(/guilds)?$|gateway$)"
)
_MENTION = re.compile(r"<@!?(\d+)>")


def snowflake(shard_id: int = 0, shard_count: int = 1) -> int:
    """A fresh unique snowflake whose timestamp puts it on ``shard_id`` of ``shard_count``."""
    ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
    ms -= (ms - shard_id) % shard_count  # step back at most shard_count-1 ms so ms % count == shard_id
    return (ms << 22) | (next(_INCREMENT) & 0x3FFFFF)


def snowflake_for_shard(shard_id: int, shard_count: int) -> int:
    """A guild id that Discord routes to ``shard_id``: ``(guild_id >> 22) % shard_count == shard_id``."""
    return snowflake(shard_id, shard_count)


def shard_of(guild_id: int, shard_count: int) -> int:
    return (int(guild_id) >> 22) % shard_count


def _iso(ts: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if ts is None else ts, UTC).isoformat()


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # Exactly "application/json": discord.py's json_or_text compares the header verbatim, so aiohttp's
    # json_response ("application/json; charset=utf-8") would make it treat every answer as text.
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def _error(status: int, message: str, code: int = 0, **extra: Any) -> web.Response:
    return _json({"message": message, "code": code, **extra}, status)


def _user_payload(user_id: int, username: str, **fields: Any) -> Json:
    base: Json = {"id": str(user_id), "username": username, "discriminator": "0", "global_name": None}
    base.update(avatar=None, bot=False, public_flags=0, flags=0)
    base.update(fields)
    return base


class _Conn:
    """One gateway websocket; one zlib stream per connection, as Discord does with compress=zlib-stream."""

    def __init__(self, ws: web.WebSocketResponse, compress: bool) -> None:
        self.ws = ws
        self.zlib = zlib.compressobj() if compress else None
        self.lock = asyncio.Lock()  # compress+send must not interleave or the shared zlib stream breaks
        self.session: _Session | None = None
        self.server_closed = False
        self.heartbeats = 0

    async def send(self, payload: Json) -> None:
        raw = json.dumps(payload, separators=(",", ":")).encode()
        async with self.lock:
            if self.ws.closed:
                return
            if self.zlib is None:
                await self.ws.send_str(raw.decode())
            else:  # Z_SYNC_FLUSH: every frame ends in 00 00 ff ff, which is how discord.py spots a whole message
                await self.ws.send_bytes(self.zlib.compress(raw) + self.zlib.flush(zlib.Z_SYNC_FLUSH))


class _Session:
    def __init__(self, shard_id: int, shard_count: int, intents: int) -> None:
        self.id = secrets.token_hex(16)
        self.shard_id, self.shard_count, self.intents = shard_id, shard_count, intents
        self.seq = 0
        self.events: list[Json] = []  # what was dispatched, for replay on RESUME
        self.conn: _Conn | None = None
        self.lock = asyncio.Lock()
        self.alive = True
        self.disconnected_at: float | None = None

    def owns(self, guild_id: int | None) -> bool:
        if guild_id is None:  # DMs arrive on shard 0
            return self.shard_id == 0
        return shard_of(guild_id, self.shard_count) == self.shard_id

    async def dispatch_nolock(self, t: str, d: Any) -> None:
        self.seq += 1
        payload = {"op": 0, "t": t, "s": self.seq, "d": d}
        self.events.append(payload)
        del self.events[:-2000]
        if self.conn is not None:
            # If the socket is going away the event stays buffered for the RESUME.
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.conn.send(payload)

    async def dispatch(self, t: str, d: Any) -> None:
        async with self.lock:
            await self.dispatch_nolock(t, d)


class FakeDiscord(BackgroundServer):
    """Fake Discord REST + gateway + OAuth2 server. See the module docstring."""

    thread_name = "fake-discord"

    def __init__(
        self,
        *,
        token: str = "fake-bot-token",
        host: str = "127.0.0.1",
        port: int = 0,
        bot_username: str = "Parley",
        recommended_shards: int = 1,
        max_concurrency: int = 1,
        heartbeat_interval_ms: int = 41250,
        oauth_client_id: str = "fake-client-id",
        oauth_client_secret: str = "fake-client-secret",
        disallowed_intents: int = 0,
        resume_window: float = 120.0,
        identify_interval: float = 0.0,
    ) -> None:
        self.token, self.host, self.port = token, host, port
        self.recommended_shards, self.max_concurrency = recommended_shards, max_concurrency
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.oauth_client_id, self.oauth_client_secret = oauth_client_id, oauth_client_secret
        self.disallowed_intents = disallowed_intents  # e.g. 1 << 15 to provoke close 4014
        self.resume_window = resume_window
        self.identify_interval = identify_interval  # 0: any pace is accepted
        self._last_identify: dict[int, float] = {}  # bucket -> monotonic time of its last accepted IDENTIFY
        self.ack_heartbeats = True  # False simulates a zombie connection
        self.echo_bot_messages = True  # Discord echoes the bot's own messages as MESSAGE_CREATE
        self.bot_user = _user_payload(snowflake(), bot_username, bot=True, verified=True, mfa_enabled=True)
        self.application: Json = {
            "id": self.bot_user["id"], "name": bot_username, "description": "", "icon": None,
            "bot_public": True, "bot_require_code_grant": False, "verify_key": "00" * 32,
            "owner": _user_payload(snowflake(), "owner"), "flags": (1 << 13) | (1 << 15) | (1 << 19),
            "team": None, "rpc_origins": [], "interactions_endpoint_url": None, "tags": [],
        }  # fmt: skip
        self.app_id = int(self.application["id"])
        self._lock = threading.RLock()  # guards all state below; never held across an await
        self.users: dict[int, Json] = {int(self.bot_user["id"]): self.bot_user}
        self.guilds: dict[int, Json] = {}
        self.channels: dict[int, Json] = {}
        self.messages: dict[int, Json] = {}
        self.members: dict[tuple[int, int], Json] = {}
        self._attachments: dict[int, tuple[bytes, str]] = {}  # id -> (data, served content type)
        self._interactions: dict[str, Json] = {}
        self._dms: dict[int, int] = {}
        self.commands: dict[int | None, list[Json]] = {}
        self._fail_rules: list[Json] = []
        self._oauth_user: Json | None = None
        self._oauth_guilds: list[Json] = []
        self._oauth_codes: dict[str, Json] = {}
        self._oauth_tokens: dict[str, Json] = {}
        self._sessions: dict[str, _Session] = {}
        self._conns: set[_Conn] = set()
        self._closing: set[asyncio.Future[Any]] = set()  # keeps close tasks referenced
        self.sent_messages: list[Json] = []
        self.edits: list[Json] = []
        self.deletes: list[Json] = []
        self.typing_calls: list[Json] = []
        self.interaction_responses: list[Json] = []
        self.command_syncs: list[Json] = []
        self.oauth_requests: list[Json] = []
        self.requests: list[Json] = []
        self.identifies: list[Json] = []
        self.resumes: list[Json] = []
        self.invalid_sessions: list[Json] = []
        self.threads_created: list[Json] = []
        self.default_user = self.add_user("alice")
        self._runner: web.AppRunner | None = None

    # ---------------------------------------------------------------- lifecycle
    async def _astart(self) -> None:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        self._routes(app)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]

    async def _astop(self) -> None:
        closing = [c.ws.close(code=1001) for c in list(self._conns)]
        if closing:
            await asyncio.wait([asyncio.ensure_future(c) for c in closing], timeout=2)
        if self._runner is not None:
            await self._runner.cleanup()
        self._sessions.clear()  # their asyncio locks belong to this loop; a restarted fake starts afresh

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/gateway"

    def client_env(self) -> dict[str, str]:
        """Environment for a bot/dashboard subprocess (names from config/settings.py)."""
        return {
            "DISCORD_BOT_TOKEN": self.token, "DISCORD_API_BASE": f"{self.url}/api/v10",
            "DISCORD_GATEWAY_URL": self.ws_url, "DISCORD_OAUTH_BASE": self.url,
            "DISCORD_CLIENT_ID": self.oauth_client_id, "DISCORD_CLIENT_SECRET": self.oauth_client_secret,
            "DISCORD_CDN_HOSTS": self.host,  # attachment URLs point at this server
        }  # fmt: skip

    def patch_discord(self) -> Callable[[], None]:
        """Point discord.py in this process at the fake; returns a function that restores the old values."""
        import discord.gateway
        import discord.http
        import yarl

        old = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
        discord.http.Route.BASE = f"{self.url}/api/v10"
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.ws_url)

        def restore() -> None:
            discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old

        return restore

    def _in_loop(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def _submit(self, coro: Coroutine[Any, Any, Any], wait: bool = True) -> None:
        """Run gateway I/O on the server loop. Waiting is safe: it never depends on the client's progress."""
        loop = self._loop
        if loop is None or not loop.is_running():
            coro.close()  # not started: nobody is connected, nothing to send
        elif self._in_loop():
            loop.create_task(coro)  # tasks start in creation order, so dispatch order is kept
        else:
            fut = asyncio.run_coroutine_threadsafe(coro, loop)
            if wait:
                fut.result(timeout=10)

    # ---------------------------------------------------------------- dispatch
    def _emit(
        self, t: str, d: Json, guild_id: int | None, transform: Callable[..., Json | None] | None = None
    ) -> None:
        self._submit(self._dispatch(t, d, guild_id, transform))

    async def _dispatch(
        self, t: str, d: Json, guild_id: int | None, transform: Callable[..., Any] | None
    ) -> None:
        now = time.monotonic()
        for s in list(self._sessions.values()):
            if s.conn is None and s.disconnected_at and now - s.disconnected_at > self.resume_window:
                s.alive = False  # never resumed: Discord forgets it
                self._sessions.pop(s.id, None)
            if not s.alive or not s.owns(guild_id):
                continue
            payload = transform(s, d) if transform else d
            if payload is not None:
                await s.dispatch(t, payload)

    def _message_for(self, session: _Session, msg: Json) -> Json | None:
        """Apply the intents a session identified with, as Discord does."""
        dm = "guild_id" not in msg
        if not session.intents & (INTENT_DIRECT_MESSAGES if dm else INTENT_GUILD_MESSAGES):
            return None
        mentioned = any(m["id"] == self.bot_user["id"] for m in msg.get("mentions", []))
        if (
            dm
            or mentioned
            or msg["author"]["id"] == self.bot_user["id"]
            or session.intents & INTENT_MESSAGE_CONTENT
        ):
            return msg
        return {**msg, "content": "", "embeds": [], "attachments": [], "components": []}

    # ---------------------------------------------------------------- state API
    def add_user(
        self, username: str, *, user_id: int | None = None, bot: bool = False, **fields: Any
    ) -> Json:
        user = _user_payload(user_id or snowflake(), username, bot=bot, **fields)
        with self._lock:
            self.users[int(user["id"])] = user
        return user

    def _resolve_user(self, author: Json | int | str | None) -> Json:
        with self._lock:
            if author is None:
                return self.default_user
            if isinstance(author, dict):
                uid = int(author.get("id") or snowflake())
                known = self.users.get(uid, {})
                user = {**_user_payload(uid, author.get("username", f"user{uid}")), **known, **author}
                user["id"] = str(uid)
                self.users[uid] = user
                return user
            for u in self.users.values():
                if str(author) in (u["id"], u["username"]):
                    return u
        raise KeyError(f"unknown user {author!r}")

    def _member(self, guild_id: int, user: Json) -> Json:
        key = (guild_id, int(user["id"]))
        with self._lock:
            if key not in self.members:
                self.members[key] = {
                    "roles": [], "joined_at": _iso(), "deaf": False, "mute": False, "flags": 0, "pending": False,
                    "nick": None, "premium_since": None, "avatar": None, "communication_disabled_until": None,
                }  # fmt: skip
            return dict(self.members[key])

    def _make_channel(self, guild_id: int, spec: Json | str, position: int, parent: int | None) -> Json:
        spec = {"name": spec} if isinstance(spec, str) else dict(spec)
        kind = int(spec.pop("type", 0))
        cid = int(spec.pop("id", 0) or snowflake())
        ch: Json = {
            "id": str(cid),
            "type": kind,
            "guild_id": str(guild_id),
            "name": spec.pop("name", f"ch{cid}"),
        }
        if kind in (11, 12):  # threads hang off a parent text channel
            parent_id = spec.pop("parent_id", None) or parent
            if parent_id is None:
                raise ValueError("a thread needs a parent_id or a text channel listed before it")
            ch.update(parent_id=str(parent_id), owner_id=self.bot_user["id"], message_count=0, member_count=1)
            ch.update(flags=0, rate_limit_per_user=0, total_message_sent=0, last_message_id=None)
            ch["thread_metadata"] = {"archived": False, "auto_archive_duration": 1440, "locked": False,
                                     "archive_timestamp": _iso()}  # fmt: skip
        else:
            ch.update(position=position, topic=None, nsfw=False, permission_overwrites=[], parent_id=None)
            ch.update(rate_limit_per_user=0, last_message_id=None, flags=0)
        ch.update(spec)
        return ch

    def add_guild(
        self,
        guild_id: int | None = None,
        name: str = "Test Guild",
        owner_id: int | None = None,
        channels: list[Json | str] | None = None,
        *,
        shard: tuple[int, int] | None = None,
        member_count: int = 2,
    ) -> Json:
        """Create a guild (``shard=(id, count)`` picks an id on that shard); connected shards get GUILD_CREATE."""
        gid = int(guild_id or snowflake(*(shard or (0, 1))))
        guild: Json = {
            "id": str(gid), "name": name, "icon": None, "owner_id": str(owner_id or self.default_user["id"]),
            "member_count": member_count, "joined_at": _iso(), "features": [], "emojis": [], "stickers": [],
            "roles": [{"id": str(gid), "name": "@everyone", "permissions": "1071698660929", "position": 0,
                       "color": 0, "colors": {"primary_color": 0}, "hoist": False, "managed": False,
                       "mentionable": False, "flags": 0, "icon": None, "unicode_emoji": None}],
            "channels": [], "threads": [], "description": None, "banner": None, "splash": None,
            "discovery_splash": None, "afk_channel_id": None, "afk_timeout": 300, "verification_level": 0,
            "default_message_notifications": 0, "explicit_content_filter": 0, "mfa_level": 0,
            "application_id": None, "system_channel_id": None, "system_channel_flags": 0, "rules_channel_id": None,
            "public_updates_channel_id": None, "vanity_url_code": None, "premium_tier": 0,
            "premium_subscription_count": 0, "preferred_locale": "en-US", "nsfw_level": 0,
            "premium_progress_bar_enabled": False, "max_members": 500000, "max_video_channel_users": 25,
        }  # fmt: skip
        first_text: int | None = None
        for pos, spec in enumerate(channels if channels is not None else ["general"]):
            ch = self._make_channel(gid, spec, pos, first_text)
            if ch["type"] in (11, 12):
                guild["threads"].append(ch)
            else:
                guild["channels"].append(ch)
                first_text = first_text or (int(ch["id"]) if ch["type"] == 0 else None)
        with self._lock:
            self.guilds[gid] = guild
            for ch in guild["channels"] + guild["threads"]:
                self.channels[int(ch["id"])] = ch
        self._emit("GUILD_CREATE", self._guild_create_payload(guild, joined=True), gid)
        return guild

    def remove_guild(self, guild_id: int) -> None:
        """The bot leaves (or is kicked from) the guild: GUILD_DELETE without ``unavailable``."""
        with self._lock:
            guild = self.guilds.pop(int(guild_id))
            for ch in guild["channels"] + guild["threads"]:
                self.channels.pop(int(ch["id"]), None)
        self._emit("GUILD_DELETE", {"id": guild["id"]}, int(guild_id))

    def update_guild(self, guild_id: int, **fields: Any) -> Json:
        with self._lock:
            guild = self.guilds[int(guild_id)]
            guild.update(fields)
        self._emit("GUILD_UPDATE", self._guild_rest_payload(guild), int(guild_id))
        return guild

    def _guild_rest_payload(self, guild: Json) -> Json:
        return {
            k: v for k, v in guild.items() if k not in ("channels", "threads", "joined_at", "member_count")
        }

    def _guild_create_payload(self, guild: Json, joined: bool = False) -> Json:
        gid = int(guild["id"])
        me = {**self._member(gid, self.bot_user), "user": self.bot_user}
        # Channels inside GUILD_CREATE carry no guild_id (threads do).
        channels = [{k: v for k, v in c.items() if k != "guild_id"} for c in guild["channels"]]
        return {
            **guild, "channels": channels, "threads": list(guild["threads"]),
            "members": [me], "voice_states": [], "presences": [], "stage_instances": [],
            "guild_scheduled_events": [], "soundboard_sounds": [], "large": False,
            # discord.py reads unavailable=False as "lazy guild from READY" (guild_available) and a missing
            # key as a join (guild_join), like Discord sends them.
            **({} if joined else {"unavailable": False}),
        }  # fmt: skip

    def add_role(self, guild_id: int, name: str, *, position: int, role_id: int | None = None) -> Json:
        """A role in the guild (GUILD_ROLE_CREATE); higher ``position`` is higher in Discord's role list."""
        gid = int(guild_id)
        role: Json = {"id": str(role_id or snowflake()), "name": name, "permissions": "0", "position": position,
                      "color": 0, "colors": {"primary_color": 0}, "hoist": False, "managed": False,
                      "mentionable": False, "flags": 0, "icon": None, "unicode_emoji": None}  # fmt: skip
        with self._lock:
            self.guilds[gid]["roles"].append(role)
        self._emit("GUILD_ROLE_CREATE", {"guild_id": str(gid), "role": role}, gid)
        return role

    def set_member_roles(self, guild_id: int, user: Json | int | str | None, role_ids: list[int]) -> None:
        """The roles a member has: sent with their messages and interactions from now on, as Discord does."""
        gid, member = int(guild_id), self._resolve_user(user)
        self._member(gid, member)  # creates the member if needed
        with self._lock:
            self.members[(gid, int(member["id"]))]["roles"] = [str(i) for i in role_ids]

    def create_dm_channel(self, user: Json | int | str | None = None) -> Json:
        user = self._resolve_user(user)
        with self._lock:
            cid = self._dms.get(int(user["id"]))
            if cid is None:
                cid = snowflake()
                self._dms[int(user["id"])] = cid
                self.channels[cid] = {"id": str(cid), "type": 1, "recipients": [user], "last_message_id": None,
                                      "flags": 0}  # fmt: skip
            return self.channels[cid]

    def _store_message(
        self, channel_id: int, author: Json, content: str, *, reference: Json | None = None,
        mentions: list[Json] | None = None, **fields: Any,
    ) -> Json:  # fmt: skip
        with self._lock:
            channel = self.channels[channel_id]
            mid = snowflake()
            msg: Json = {
                "id": str(mid), "channel_id": str(channel_id), "author": author, "content": content,
                "timestamp": _iso(), "edited_timestamp": None, "tts": False, "mention_everyone": False,
                "mentions": mentions or [], "mention_roles": [], "attachments": [], "embeds": [],
                "components": [], "pinned": False, "type": 0, "flags": 0,
            }  # fmt: skip
            msg.update(fields)
            if "guild_id" in channel:
                msg["guild_id"] = channel["guild_id"]
            ref_id = int((reference or {}).get("message_id") or 0)
            if ref_id and ref_id in self.messages:
                ref = self.messages[ref_id]
                msg["type"] = 19 if msg["type"] == 0 else msg["type"]
                msg["message_reference"] = {
                    "type": 0,
                    "message_id": ref["id"],
                    "channel_id": ref["channel_id"],
                }
                if "guild_id" in ref:
                    msg["message_reference"]["guild_id"] = ref["guild_id"]
                msg["referenced_message"] = {k: v for k, v in ref.items() if k != "referenced_message"}
            self.messages[mid] = msg
            channel["last_message_id"] = str(mid)
        return msg

    def send_user_message(
        self,
        channel_id: int,
        content: str,
        author: Json | int | str | None = None,
        *,
        reply_to: int | None = None,
        mentions: list[int] | None = None,
        reply_mention: bool = True,
        attachments: list[Json] | None = None,
    ) -> Json:
        """A user posts in a channel (guild, thread or DM); the owning shard gets MESSAGE_CREATE.

        Mentions default to the ``<@id>`` tokens in ``content``; replying mentions the replied-to author unless
        ``reply_mention=False`` (the "ping on reply" toggle). Attachments: ``{filename, data?, content_type?}``;
        their ``url`` serves ``data`` from this server.
        """
        user = self._resolve_user(author)
        channel_id = int(channel_id)
        with self._lock:
            if channel_id not in self.channels:
                raise KeyError(f"unknown channel {channel_id}")
            gid = int(self.channels[channel_id].get("guild_id") or 0) or None
            ids = [int(m) for m in (mentions if mentions is not None else _MENTION.findall(content))]
            if reply_to and reply_mention and int(reply_to) in self.messages:
                ids.append(int(self.messages[int(reply_to)]["author"]["id"]))
            mention_users = [self.users[i] for i in dict.fromkeys(ids) if i in self.users]
        if gid:
            mention_users = [{**u, "member": self._member(gid, u)} for u in mention_users]
        files = [self._attachment(channel_id, a) for a in attachments or []]
        reference = {"message_id": reply_to} if reply_to else None
        extra: Json = {"member": self._member(gid, user)} if gid else {}
        msg = self._store_message(
            channel_id, user, content, reference=reference, mentions=mention_users, attachments=files, **extra
        )
        self._emit("MESSAGE_CREATE", msg, gid, self._message_for)
        return msg

    def _attachment(self, channel_id: int, spec: Json) -> Json:
        aid = snowflake()
        data = spec.get("data", b"")
        data = data.encode() if isinstance(data, str) else bytes(data)
        name = spec.get("filename", "file.txt")
        url = f"{self.url}/attachments/{channel_id}/{aid}/{name}"
        content_type = spec.get("content_type", "text/plain")
        with self._lock:
            self._attachments[aid] = (data, content_type)
        att = {"id": str(aid), "filename": name, "size": len(data), "url": url, "proxy_url": url,
               "content_type": content_type}  # fmt: skip
        att.update({k: v for k, v in spec.items() if k not in ("data", "id")})
        return att

    def dispatch_interaction(
        self,
        name: str,
        options: dict[str, Any] | list[Json] | None = None,
        *,
        channel_id: int,
        user: Json | int | str | None = None,
        command_id: int | None = None,
        permissions: str = ALL_PERMISSIONS,
    ) -> Json:
        """Dispatch a slash command (INTERACTION_CREATE type 2); answers land in ``interaction_responses``."""
        user = self._resolve_user(user)
        with self._lock:
            channel = self.channels[int(channel_id)]
            gid = int(channel.get("guild_id") or 0) or None
            known = [c for cmds in self.commands.values() for c in cmds if c["name"] == name]
        kinds = {bool: 5, int: 4, float: 10, str: 3}
        opts = options if isinstance(options, list) else [
            {"name": k, "type": kinds.get(type(v), 3), "value": v} for k, v in (options or {}).items()
        ]  # fmt: skip
        iid, token = snowflake(), secrets.token_urlsafe(24)
        cmd_id = command_id or (int(known[0]["id"]) if known else snowflake())
        data: Json = {"id": str(cmd_id), "name": name, "type": 1, "options": opts}
        inter: Json = {
            "id": str(iid), "application_id": self.application["id"], "type": 2, "data": data, "token": token,
            "version": 1, "channel_id": str(channel_id), "channel": channel, "locale": "en-US",
            "app_permissions": ALL_PERMISSIONS, "entitlements": [], "attachment_size_limit": 26214400,
            "context": 0 if gid else 1, "authorizing_integration_owners": {"0": str(gid or 0)},
        }  # fmt: skip
        if gid:
            data["guild_id"] = str(gid)
            inter.update(guild_id=str(gid), guild_locale="en-US")
            inter["member"] = {**self._member(gid, user), "user": user, "permissions": permissions}
        else:
            inter["user"] = user
        with self._lock:
            self._interactions[token] = {"id": iid, "channel_id": int(channel_id), "responded": False,
                                         "original": None, "payload": inter}  # fmt: skip
        self._emit("INTERACTION_CREATE", inter, gid)
        return inter

    def disconnect_shard(self, shard_id: int, code: int = 4000, *, forget_session: bool = False) -> int:
        """Close shard ``shard_id``'s sockets with a resumable code; ``forget_session`` makes the RESUME fail (op 9).

        Returns how many sockets are being closed. Does not wait for the close handshake (the client might
        run in the calling thread).
        """
        with self._lock:
            conns = [c for c in self._conns if c.session and (shard_id < 0 or c.session.shard_id == shard_id)]
            for c in conns:
                c.server_closed = True
                if forget_session and c.session:
                    c.session.alive = False
        for c in conns:
            self._submit(c.ws.close(code=code), wait=False)
        return len(conns)

    def disconnect_all(self, code: int = 4000) -> int:
        return self.disconnect_shard(-1, code)

    def fail_next(
        self, method: str, path_regex: str, status: int = 429, times: int = 1, retry_after: float = 0.2,
        *, is_global: bool = False, body: Json | None = None,
    ) -> None:  # fmt: skip
        """Fail the next ``times`` REST calls whose path after /api/v10 matches ``path_regex`` (re.search)."""
        with self._lock:
            self._fail_rules.append({"method": method.upper(), "re": re.compile(path_regex), "status": status,
                                     "times": times, "retry_after": retry_after, "global": is_global,
                                     "body": body})  # fmt: skip

    def clear_failures(self) -> None:
        """Forget every ``fail_next`` rule still pending."""
        with self._lock:
            self._fail_rules.clear()

    def set_oauth_user(self, user: Json | None, guilds: list[Json] | None = None) -> Json | None:
        """The user who "logs in" at /oauth2/authorize, and the guilds /users/@me/guilds lists for them."""
        if user is None:
            self._oauth_user = None
            return None
        full = self._resolve_user(user)
        full = {**full, "email": user.get("email", f"{full['username']}@example.com"), "verified": True,
                "locale": "en-US", "mfa_enabled": False, "premium_type": 0}  # fmt: skip
        self._oauth_guilds = [
            {"id": str(g["id"]), "name": g.get("name", "Guild"), "icon": g.get("icon"), "banner": None,
             "owner": bool(g.get("owner", False)), "permissions": str(g.get("permissions", "0")),
             "features": []}
            for g in guilds or []
        ]  # fmt: skip
        self._oauth_user = full
        return full

    # ---------------------------------------------------------------- assertions
    @property
    def identify_count(self) -> int:
        return len(self.identifies)

    @property
    def resume_count(self) -> int:
        return len(self.resumes)

    @property
    def invalid_session_count(self) -> int:
        return len(self.invalid_sessions)

    @property
    def identifies_per_shard(self) -> dict[int, int]:
        """Accepted IDENTIFYs per shard id: each was answered with one READY."""
        with self._lock:
            out: dict[int, int] = {}
            for identify in self.identifies:
                out[identify["shard"][0]] = out.get(identify["shard"][0], 0) + 1
            return out

    @property
    def connections(self) -> dict[int, int]:
        """Open, identified (or resumed) gateway sockets per shard id."""
        with self._lock:
            out: dict[int, int] = {}
            for c in self._conns:
                if c.session is not None and not c.ws.closed:
                    out[c.session.shard_id] = out.get(c.session.shard_id, 0) + 1
            return out

    def reset_records(self) -> None:
        with self._lock:
            for rec in (self.sent_messages, self.edits, self.deletes, self.typing_calls, self.requests,
                        self.interaction_responses, self.command_syncs, self.oauth_requests,
                        self.threads_created):  # fmt: skip
                rec.clear()

    def wait_for(self, predicate: Callable[[], T | None], timeout: float = 10.0) -> T:
        """Block until ``predicate()`` is truthy and return it (not from a thread running the client!)."""
        return wait_until(predicate, timeout, interval=0.02)

    async def wait_for_async(self, predicate: Callable[[], T | None], timeout: float = 10.0) -> T:
        return await wait_until_async(predicate, timeout, interval=0.02)

    def _sent_in(self, n: int, channel_id: int | None) -> list[Json] | None:
        with self._lock:
            found = [
                m for m in self.sent_messages if channel_id is None or m["channel_id"] == int(channel_id)
            ]
        return found if len(found) >= n else None

    def wait_for_messages(
        self, n: int = 1, channel_id: int | None = None, timeout: float = 10.0
    ) -> list[Json]:
        """Block until the bot has sent ``n`` messages (in ``channel_id``); returns all matching records."""
        return self.wait_for(lambda: self._sent_in(n, channel_id), timeout)

    async def wait_for_messages_async(
        self, n: int = 1, channel_id: int | None = None, timeout: float = 10.0
    ) -> list[Json]:
        return await self.wait_for_async(lambda: self._sent_in(n, channel_id), timeout)

    # ---------------------------------------------------------------- HTTP plumbing
    def _routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/gateway", self._gateway)
        for base in ("/api", API):  # allauth uses /api/..., the bot /api/v10/...
            r.add_get(f"{base}/users/@me", self._users_me)
            r.add_get(f"{base}/users/@me/guilds", self._users_me_guilds)
            r.add_get(f"{base}/oauth2/authorize", self._oauth_authorize)
            r.add_post(f"{base}/oauth2/token", self._oauth_token)
        r.add_get("/oauth2/authorize", self._oauth_authorize)
        r.add_post(f"{API}/users/@me/channels", self._create_dm)
        r.add_get(f"{API}/users/{{uid}}", self._get_user)
        r.add_get(f"{API}/oauth2/applications/@me", self._app_info)
        r.add_get(f"{API}/applications/@me", self._app_info)
        r.add_get(f"{API}/gateway", self._get_gateway)
        r.add_get(f"{API}/gateway/bot", self._get_gateway)
        r.add_get(f"{API}/channels/{{cid}}", self._get_channel)
        r.add_get(f"{API}/channels/{{cid}}/messages", self._list_messages)
        r.add_post(f"{API}/channels/{{cid}}/messages", self._create_message)
        r.add_get(f"{API}/channels/{{cid}}/messages/{{mid}}", self._get_message)
        r.add_patch(f"{API}/channels/{{cid}}/messages/{{mid}}", self._edit_message)
        r.add_delete(f"{API}/channels/{{cid}}/messages/{{mid}}", self._delete_message)
        r.add_post(f"{API}/channels/{{cid}}/typing", self._typing)
        r.add_post(f"{API}/channels/{{cid}}/messages/{{mid}}/threads", self._create_thread)
        r.add_get(f"{API}/guilds/{{gid}}", self._get_guild)
        r.add_get(f"{API}/guilds/{{gid}}/channels", self._guild_channels)
        r.add_get(f"{API}/guilds/{{gid}}/members/{{uid}}", self._get_member)
        for path in ("/applications/{app}/commands", "/applications/{app}/guilds/{gid}/commands"):
            r.add_get(API + path, self._commands)
            r.add_put(API + path, self._commands)
        r.add_post(f"{API}/interactions/{{iid}}/{{token}}/callback", self._interaction_callback)
        r.add_post(f"{API}/webhooks/{{app}}/{{token}}", self._webhook_message)
        r.add_route("*", f"{API}/webhooks/{{app}}/{{token}}/messages/{{mid}}", self._webhook_message)
        r.add_get("/attachments/{cid}/{aid}/{name}", self._get_attachment)
        r.add_route("*", f"{API}/{{tail:.*}}", self._not_found)
        r.add_get("/_control/state", self._ctl_state)
        r.add_get("/_control/sent", self._ctl_sent)
        r.add_post("/_control/{action}", self._ctl_post)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        path = request.path
        if not path.startswith("/api/"):
            return await handler(request)
        rel = path[len(API) :] if path.startswith(API + "/") else path[4:]
        resp: web.StreamResponse
        if path.startswith(API) and not _NO_BOT_AUTH.match(rel) and not self._is_bot(request):
            resp = _error(401, "401: Unauthorized")
        elif rule := self._take_rule(request.method, rel):
            resp = self._rule_response(rule, self._bucket(request))
        else:
            resp = await handler(request)
            if 200 <= resp.status < 300:
                resp.headers.update(self._rl_headers(self._bucket(request), 49, 1.0))
        with self._lock:
            self.requests.append(
                {"method": request.method, "path": path, "status": resp.status, "t": time.time()}
            )
        return resp

    def _is_bot(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bot {self.token}"

    def _bearer(self, request: web.Request) -> Json | None:
        auth = request.headers.get("Authorization", "")
        return self._oauth_tokens.get(auth[7:]) if auth.startswith("Bearer ") else None

    def _bucket(self, request: web.Request) -> str:
        route = request.match_info.route.resource
        template = route.canonical if route is not None else request.path
        return hashlib.sha1(f"{request.method} {template}".encode()).hexdigest()[:16]

    @staticmethod
    def _rl_headers(bucket: str, remaining: int, reset_after: float) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": "50", "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}", "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": bucket, "Via": "1.1 google",  # real answers come through Google's LB
        }  # fmt: skip

    def _take_rule(self, method: str, rel: str) -> Json | None:
        with self._lock:
            for rule in self._fail_rules:
                if rule["method"] in ("*", method) and rule["re"].search(rel):
                    rule["times"] -= 1
                    if rule["times"] <= 0:
                        self._fail_rules.remove(rule)
                    return rule
        return None

    def _rule_response(self, rule: Json, bucket: str) -> web.Response:
        status, retry = rule["status"], rule["retry_after"]
        if status != 429:
            return _json(rule["body"] or {"message": f"{status}: fake failure", "code": 0}, status)
        # discord.py treats a 429 without a Via header as a Cloudflare ban and raises instead of retrying.
        headers = {**self._rl_headers(bucket, 0, retry), "Retry-After": str(math.ceil(retry)),
                   "X-RateLimit-Scope": "global" if rule["global"] else "user"}  # fmt: skip
        if rule["global"]:
            headers["X-RateLimit-Global"] = "true"
        body = rule["body"] or {
            "message": "You are being rate limited.",
            "retry_after": retry,
            "global": rule["global"],
        }
        return _json(body, 429, headers)

    async def _not_found(self, request: web.Request) -> web.Response:
        return _error(404, "404: Not Found")

    @staticmethod
    async def _payload(request: web.Request) -> tuple[Any, list[Json]]:
        """JSON body, or multipart with ``payload_json`` plus ``files[n]`` parts (discord.py's two encodings)."""
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            raw = form.get("payload_json")
            payload = json.loads(raw if isinstance(raw, str | bytes) else "{}") if raw else {}
            files = [
                {"filename": f.filename, "content_type": f.content_type, "data": f.file.read()}
                for f in form.values()
                if isinstance(f, web.FileField)
            ]
            return payload, files
        text = await request.text()
        return (json.loads(text) if text else {}), []

    # ---------------------------------------------------------------- REST: users, app, gateway
    async def _users_me(self, request: web.Request) -> web.Response:
        if self._is_bot(request):
            return _json(self.bot_user)
        grant = self._bearer(request)
        self._oauth_log("me", request, {})
        if grant is None:
            return _error(401, "401: Unauthorized")
        user = dict(grant["user"])
        if "email" not in grant["scope"].split():
            user.pop("email", None)
        return _json(user)

    async def _users_me_guilds(self, request: web.Request) -> web.Response:
        if self._is_bot(request):
            with self._lock:
                return _json([{"id": g["id"], "name": g["name"], "icon": g["icon"], "owner": False,
                               "permissions": ALL_PERMISSIONS, "features": []} for g in self.guilds.values()])  # fmt: skip
        grant = self._bearer(request)
        self._oauth_log("guilds", request, {})
        if grant is None:
            return _error(401, "401: Unauthorized")
        if "guilds" not in grant["scope"].split():
            return _error(403, "Missing Access", 50001)
        return _json(grant["guilds"])

    async def _get_user(self, request: web.Request) -> web.Response:
        user = self.users.get(int(request.match_info["uid"]))
        return _json(user) if user else _error(404, "Unknown User", 10013)

    async def _create_dm(self, request: web.Request) -> web.Response:
        payload, _ = await self._payload(request)
        try:
            return _json(self.create_dm_channel(int(payload["recipient_id"])))
        except KeyError:
            return _error(404, "Unknown User", 10013)

    async def _app_info(self, request: web.Request) -> web.Response:
        return _json({**self.application, "bot": self.bot_user, "approximate_guild_count": len(self.guilds)})

    async def _get_gateway(self, request: web.Request) -> web.Response:
        data: Json = {"url": self.ws_url}
        if request.path.endswith("/bot"):
            limit = {"total": 1000, "remaining": 1000 - self.identify_count, "reset_after": 86_400_000,
                     "max_concurrency": self.max_concurrency}  # fmt: skip
            data.update(shards=self.recommended_shards, session_start_limit=limit)
        return _json(data)

    # ---------------------------------------------------------------- REST: channels, messages, guilds
    def _channel(self, request: web.Request) -> Json | None:
        return self.channels.get(int(request.match_info["cid"]))

    async def _get_channel(self, request: web.Request) -> web.Response:
        ch = self._channel(request)
        return _json(ch) if ch else _error(404, "Unknown Channel", 10003)

    async def _get_guild(self, request: web.Request) -> web.Response:
        guild = self.guilds.get(int(request.match_info["gid"]))
        if guild is None:
            return _error(404, "Unknown Guild", 10004)
        counts = {"approximate_member_count": guild["member_count"], "approximate_presence_count": 1}
        return _json({**self._guild_rest_payload(guild), **counts})

    async def _guild_channels(self, request: web.Request) -> web.Response:
        guild = self.guilds.get(int(request.match_info["gid"]))
        return _json(guild["channels"]) if guild else _error(404, "Unknown Guild", 10004)

    async def _get_member(self, request: web.Request) -> web.Response:
        gid, uid = int(request.match_info["gid"]), int(request.match_info["uid"])
        if (
            gid not in self.guilds
            or uid not in self.users
            or ((gid, uid) not in self.members and uid != self.app_id)
        ):
            return _error(404, "Unknown Member", 10007)
        return _json({**self._member(gid, self.users[uid]), "user": self.users[uid]})

    async def _list_messages(self, request: web.Request) -> web.Response:
        ch = self._channel(request)
        if ch is None:
            return _error(404, "Unknown Channel", 10003)
        q = request.query
        limit = min(int(q.get("limit", 50)), 100)
        with self._lock:
            msgs = sorted((m for m in self.messages.values() if m["channel_id"] == ch["id"]),
                          key=lambda m: int(m["id"]), reverse=True)  # fmt: skip
        if "before" in q:
            msgs = [m for m in msgs if int(m["id"]) < int(q["before"])]
        if "after" in q:
            msgs = [m for m in msgs if int(m["id"]) > int(q["after"])][-limit:]
        return _json(msgs[:limit])

    async def _get_message(self, request: web.Request) -> web.Response:
        msg = self.messages.get(int(request.match_info["mid"]))
        if msg is None or msg["channel_id"] != request.match_info["cid"]:
            return _error(404, "Unknown Message", 10008)
        return _json(msg)

    @staticmethod
    def _invalid(payload: Json, files: list[Json], edit: bool = False) -> web.Response | None:
        """Discord's limits on what a message may carry (50035 Invalid Form Body / 50006 empty)."""
        errors: Json = {}
        if len(payload.get("content") or "") > 2000:
            errors["content"] = {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH",
                                              "message": "Must be 2000 or fewer in length."}]}  # fmt: skip
        embeds = payload.get("embeds") or []
        size = sum(
            len(e.get("title", "")) + len(e.get("description", "")) + len(e.get("footer", {}).get("text", ""))
            + len(e.get("author", {}).get("name", ""))
            + sum(len(f.get("name", "")) + len(f.get("value", "")) for f in e.get("fields", []))
            for e in embeds
        )  # fmt: skip
        if len(embeds) > 10 or size > 6000 or any(len(e.get("description", "")) > 4096 for e in embeds):
            errors["embeds"] = {"_errors": [{"code": "MAX_EMBED_SIZE_EXCEEDED", "message": "Embed size exceeds "
                                             "maximum size of 6000"}]}  # fmt: skip
        if errors:
            return _error(400, "Invalid Form Body", 50035, errors=errors)
        keys = ("content", "embeds", "components", "sticker_ids", "poll")
        if not edit and not files and not any(payload.get(k) for k in keys):
            return _error(400, "Cannot send an empty message", 50006)
        return None

    def _record(self, msg: Json, payload: Json, via: str) -> Json:
        ref = payload.get("message_reference")
        return {
            "id": int(msg["id"]), "channel_id": int(msg["channel_id"]), "content": msg["content"],
            "guild_id": int(msg["guild_id"]) if "guild_id" in msg else None, "embeds": msg["embeds"],
            "allowed_mentions": payload.get("allowed_mentions"), "message_reference": ref,
            "reply_to": int(ref["message_id"]) if ref and ref.get("message_id") else None,
            "components": msg["components"], "attachments": [a["filename"] for a in msg["attachments"]],
            "flags": msg["flags"], "nonce": payload.get("nonce"), "via": via, "timestamp": msg["timestamp"],
            "t": time.time(),
        }  # fmt: skip

    def _bot_message(self, channel_id: int, payload: Json, files: list[Json], via: str, **extra: Any) -> Json:
        content = payload.get("content") or ""
        mentions = [self.users[int(i)] for i in _MENTION.findall(content) if int(i) in self.users]
        msg = self._store_message(
            channel_id, self.bot_user, content, reference=payload.get("message_reference"), mentions=mentions,
            embeds=payload.get("embeds") or [], components=payload.get("components") or [],
            attachments=[self._attachment(channel_id, f) for f in files], flags=int(payload.get("flags") or 0),
            **extra,
        )  # fmt: skip
        with self._lock:
            self.sent_messages.append(self._record(msg, payload, via))
        if self.echo_bot_messages:
            gid = int(msg.get("guild_id") or 0) or None
            self._emit("MESSAGE_CREATE", {**msg, "member": self._member(gid, self.bot_user)} if gid else msg, gid,
                       self._message_for)  # fmt: skip
        return msg

    async def _create_message(self, request: web.Request) -> web.Response:
        ch = self._channel(request)
        if ch is None:
            return _error(404, "Unknown Channel", 10003)
        payload, files = await self._payload(request)
        if bad := self._invalid(payload, files):
            return bad
        ref = payload.get("message_reference") or {}
        if (
            ref.get("message_id")
            and int(ref["message_id"]) not in self.messages
            and ref.get("fail_if_not_exists", 1)
        ):
            return _error(400, "Invalid Form Body", 50035, errors={"message_reference": {"_errors": [
                {"code": "REPLIES_UNKNOWN_MESSAGE", "message": "Unknown message"}]}})  # fmt: skip
        return _json(self._bot_message(int(ch["id"]), payload, files, "rest", nonce=payload.get("nonce")))

    def _apply_edit(self, msg: Json, payload: Json, via: str) -> Json:
        with self._lock:
            for key in ("content", "embeds", "components", "flags"):
                if key in payload and payload[key] is not None:
                    msg[key] = payload[key]
            msg["edited_timestamp"] = _iso()
            self.edits.append({"id": int(msg["id"]), "channel_id": int(msg["channel_id"]), "content": msg["content"],
                               "embeds": msg["embeds"], "allowed_mentions": payload.get("allowed_mentions"),
                               "via": via, "timestamp": msg["edited_timestamp"], "t": time.time()})  # fmt: skip
        self._emit("MESSAGE_UPDATE", msg, int(msg.get("guild_id") or 0) or None, self._message_for)
        return msg

    async def _edit_message(self, request: web.Request) -> web.Response:
        msg = self.messages.get(int(request.match_info["mid"]))
        if msg is None or msg["channel_id"] != request.match_info["cid"]:
            return _error(404, "Unknown Message", 10008)
        if msg["author"]["id"] != self.bot_user["id"]:
            return _error(403, "Cannot edit a message authored by another user", 50005)
        payload, files = await self._payload(request)
        if bad := self._invalid(payload, files, edit=True):
            return bad
        return _json(self._apply_edit(msg, payload, "rest"))

    def _delete(self, msg: Json) -> None:
        with self._lock:
            self.messages.pop(int(msg["id"]), None)
            self.deletes.append(
                {"id": int(msg["id"]), "channel_id": int(msg["channel_id"]), "t": time.time()}
            )
        data = {k: msg[k] for k in ("id", "channel_id", "guild_id") if k in msg}
        self._emit("MESSAGE_DELETE", data, int(msg.get("guild_id") or 0) or None)

    async def _delete_message(self, request: web.Request) -> web.Response:
        msg = self.messages.get(int(request.match_info["mid"]))
        if msg is None or msg["channel_id"] != request.match_info["cid"]:
            return _error(404, "Unknown Message", 10008)
        self._delete(msg)
        return web.Response(status=204)

    async def _typing(self, request: web.Request) -> web.Response:
        if self._channel(request) is None:
            return _error(404, "Unknown Channel", 10003)
        with self._lock:
            self.typing_calls.append({"channel_id": int(request.match_info["cid"]), "t": time.time()})
        return web.Response(status=204)

    async def _create_thread(self, request: web.Request) -> web.Response:
        """A public thread from a message: like Discord, the thread's id is the message's, its owner the bot."""
        ch = self._channel(request)
        if ch is None:
            return _error(404, "Unknown Channel", 10003)
        mid = int(request.match_info["mid"])
        msg = self.messages.get(mid)
        if msg is None or msg["channel_id"] != ch["id"]:
            return _error(404, "Unknown Message", 10008)
        if ch["type"] not in (0, 5):
            return _error(400, "Cannot execute action on this channel type", 50024)
        if mid in self.channels:
            return _error(400, "A thread has already been created for this message", 160004)
        payload, _ = await self._payload(request)
        gid = int(ch["guild_id"])
        kind = 10 if ch["type"] == 5 else 11
        spec = {
            "id": mid,
            "name": str(payload.get("name") or "thread")[:100],
            "type": kind,
            "parent_id": ch["id"],
        }
        thread = self._make_channel(gid, spec, 0, None)
        thread["thread_metadata"]["auto_archive_duration"] = int(payload.get("auto_archive_duration") or 1440)
        with self._lock:
            self.guilds[gid]["threads"].append(thread)
            self.channels[mid] = thread
            self.threads_created.append({"id": mid, "parent_id": int(ch["id"]), "name": thread["name"],
                                         "t": time.time()})  # fmt: skip
        self._emit("THREAD_CREATE", {**thread, "newly_created": True}, gid)
        return _json(thread)

    async def _get_attachment(self, request: web.Request) -> web.Response:
        """The CDN: the attachment's bytes with its content type (the bot checks both)."""
        found = self._attachments.get(int(request.match_info["aid"]))
        if found is None:
            return web.Response(status=404)
        return web.Response(body=found[0], headers={"Content-Type": found[1]})

    # ---------------------------------------------------------------- REST: app commands, interactions
    async def _commands(self, request: web.Request) -> web.Response:
        gid = int(request.match_info.get("gid", 0)) or None
        if request.method == "GET":
            return _json(self.commands.get(gid, []))
        payload, _ = await self._payload(request)
        with self._lock:
            old = {c["name"]: c["id"] for c in self.commands.get(gid, [])}
            cmds = [
                {"type": 1, "description": "", "options": [], "default_member_permissions": None, "nsfw": False,
                 **c, "id": old.get(c["name"]) or str(snowflake()), "application_id": self.application["id"],
                 "version": str(snowflake()), **({"guild_id": str(gid)} if gid else {})}
                for c in payload
            ]  # fmt: skip
            self.commands[gid] = cmds
            self.command_syncs.append({"guild_id": gid, "names": [c["name"] for c in cmds], "t": time.time()})
        return _json(cmds)

    async def _interaction_callback(self, request: web.Request) -> web.Response:
        inter = self._interactions.get(request.match_info["token"])
        if inter is None or str(inter["id"]) != request.match_info["iid"]:
            return _error(404, "Unknown interaction", 10062)
        if inter["responded"]:
            return _error(400, "Interaction has already been acknowledged.", 40060)
        payload, files = await self._payload(request)
        kind, data = int(payload.get("type", 0)), payload.get("data") or {}
        inter["responded"] = True
        msg = None
        if kind == 4:
            msg = inter["original"] = self._bot_message(
                inter["channel_id"], data, files, "interaction", type=20
            )
        with self._lock:
            self.interaction_responses.append({"interaction_id": inter["id"], "kind": "callback", "type": kind,
                                               "content": data.get("content"), "data": data, "t": time.time()})  # fmt: skip
        if request.query.get("with_response") not in ("1", "true", "True"):
            return web.Response(status=204)
        info = {
            "id": str(inter["id"]),
            "type": 2,
            "response_message_id": msg["id"] if msg else None,
            "response_message_loading": kind == 5,
            "response_message_ephemeral": bool(data.get("flags", 0) & 64),
        }
        return _json({"interaction": info, "resource": {"type": kind, **({"message": msg} if msg else {})}})

    async def _webhook_message(self, request: web.Request) -> web.Response:
        inter = self._interactions.get(request.match_info["token"])
        if inter is None or request.match_info["app"] != self.application["id"]:
            return _error(404, "Unknown Webhook", 10015)
        mid = request.match_info.get("mid")
        payload, files = await self._payload(request) if request.method in ("POST", "PATCH") else ({}, [])
        record = {
            "interaction_id": inter["id"],
            "content": payload.get("content"),
            "data": payload,
            "t": time.time(),
        }
        if mid is None:  # followup
            followup = self._bot_message(inter["channel_id"], payload, files, "followup")
            with self._lock:
                self.interaction_responses.append({**record, "kind": "followup"})
            return (
                _json(followup)
                if request.query.get("wait") in ("1", "true", "True")
                else web.Response(status=204)
            )
        msg = inter["original"] if mid == "@original" else self.messages.get(int(mid))
        if request.method == "PATCH" and msg is None and mid == "@original":  # completing a deferred response
            msg = inter["original"] = self._bot_message(
                inter["channel_id"], payload, files, "interaction", type=20
            )
        elif msg is None:
            return _error(404, "Unknown Message", 10008)
        elif request.method == "PATCH":
            self._apply_edit(msg, payload, "interaction")
        elif request.method == "DELETE":
            self._delete(msg)
        with self._lock:
            self.interaction_responses.append({**record, "kind": f"{request.method.lower()}_{mid}"})
        return web.Response(status=204) if request.method == "DELETE" else _json(msg)

    # ---------------------------------------------------------------- OAuth2
    def _oauth_log(self, endpoint: str, request: web.Request, params: Json) -> None:
        with self._lock:
            self.oauth_requests.append({"endpoint": endpoint, "method": request.method, "path": request.path,
                                        "params": params, "t": time.time()})  # fmt: skip

    async def _oauth_authorize(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        self._oauth_log("authorize", request, q)
        redirect = q.get("redirect_uri")
        if q.get("client_id") != self.oauth_client_id or not redirect or q.get("response_type") != "code":
            return web.Response(status=400, text="invalid client_id, redirect_uri or response_type")
        params = {"state": q["state"]} if "state" in q else {}
        if self._oauth_user is None:
            params = {"error": "access_denied", "error_description": "no fake OAuth user set", **params}
        else:
            code = secrets.token_urlsafe(16)
            self._oauth_codes[code] = {"user": self._oauth_user, "guilds": self._oauth_guilds, "redirect_uri": redirect,
                                       "scope": q.get("scope", "identify"), "challenge": q.get("code_challenge"),
                                       "method": q.get("code_challenge_method", "plain")}  # fmt: skip
            params = {"code": code, **params}
        sep = "&" if "?" in redirect else "?"
        return web.Response(status=302, headers={"Location": f"{redirect}{sep}{urlencode(params)}"})

    async def _oauth_token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self._oauth_log("token", request, form)
        cid, secret = form.get("client_id"), form.get("client_secret")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):  # client_secret_basic is allowed too
            try:
                cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                cid = None
        if cid != self.oauth_client_id or secret != self.oauth_client_secret:
            return _json({"error": "invalid_client"}, 401)
        if form.get("grant_type") == "refresh_token":
            grant = next(
                (g for g in self._oauth_tokens.values() if g["refresh"] == form.get("refresh_token")), None
            )
        elif form.get("grant_type") == "authorization_code":
            grant = self._oauth_codes.pop(form.get("code", ""), None)
            if grant and form.get("redirect_uri", grant["redirect_uri"]) != grant["redirect_uri"]:
                grant = None
            if grant and grant["challenge"]:  # PKCE
                verifier = form.get("code_verifier", "").encode()
                digest = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=").decode()
                if (digest if grant["method"] == "S256" else verifier.decode()) != grant["challenge"]:
                    grant = None
        else:
            return _json({"error": "unsupported_grant_type"}, 400)
        if grant is None:
            return _json({"error": "invalid_grant", "error_description": 'Invalid "code" in request.'}, 400)
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self._oauth_tokens[access] = {**grant, "refresh": refresh}
        return _json({"access_token": access, "token_type": "Bearer", "expires_in": 604800,
                      "refresh_token": refresh, "scope": grant["scope"]})  # fmt: skip

    # ---------------------------------------------------------------- gateway
    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        compress = request.query.get("compress")
        if compress not in (None, "", "zlib-stream"):
            await ws.close(code=4000, message=b"only zlib-stream is supported by the fake")
            return ws
        conn = _Conn(ws, compress == "zlib-stream")
        with self._lock:
            self._conns.add(conn)
        try:
            await conn.send(
                {"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms}, "s": None, "t": None}
            )
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue  # discord.py sends JSON text frames; ETF is not supported
                await self._on_op(conn, json.loads(msg.data))
        finally:
            with self._lock:
                self._conns.discard(conn)
            s = conn.session
            if s is not None and s.conn is conn:
                s.conn, s.disconnected_at = None, time.monotonic()
                # A clean close by the client (1000/1001) ends the session; anything else stays resumable.
                if not conn.server_closed and ws.close_code in (1000, 1001):
                    s.alive = False
                    self._sessions.pop(s.id, None)
        return ws

    async def _on_op(self, conn: _Conn, data: Json) -> None:
        op, d = data.get("op"), data.get("d")
        if op == 1:
            conn.heartbeats += 1
            if self.ack_heartbeats:
                await conn.send({"op": 11, "d": None, "s": None, "t": None})
        elif op == 2:
            await self._identify(conn, d or {})
        elif op == 6:
            await self._resume(conn, d or {})
        elif op not in (3, 4, 8):  # presence, voice state and member requests are accepted and ignored
            await conn.ws.close(code=4001, message=b"Unknown opcode")

    async def _identify(self, conn: _Conn, d: Json) -> None:
        if d.get("token") != self.token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        if conn.session is not None:
            await conn.ws.close(code=4005, message=b"Already authenticated.")
            return
        shard_id, shard_count = (int(x) for x in d.get("shard") or (0, 1))
        intents = int(d.get("intents") or 0)
        if not 0 <= shard_id < shard_count:
            await conn.ws.close(code=4010, message=b"Invalid shard.")
            return
        if intents & self.disallowed_intents:
            await conn.ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        if self._identify_too_soon(shard_id, shard_count):
            await conn.send(
                {"op": 9, "d": False, "s": None, "t": None}
            )  # the client must wait and IDENTIFY again
            return
        session = _Session(shard_id, shard_count, intents)
        with self._lock:
            guilds = [g for g in self.guilds.values() if session.owns(int(g["id"]))]
            self.identifies.append({"shard": [shard_id, shard_count], "intents": intents, "session_id": session.id,
                                    "compress": conn.zlib is not None, "t": time.time()})  # fmt: skip
        if len(guilds) > 2500:
            await conn.ws.close(code=4011, message=b"Sharding required.")
            return
        async with session.lock:  # READY and the GUILD_CREATEs go out before any other event for this session
            self._sessions[session.id] = session
            session.conn, conn.session = conn, session
            ready = {
                "v": 10, "user": self.bot_user, "session_id": session.id, "session_type": "normal",
                "resume_gateway_url": self.ws_url, "shard": [shard_id, shard_count],
                "guilds": [{"id": g["id"], "unavailable": True} for g in guilds],
                "application": {"id": self.application["id"], "flags": self.application["flags"]},
                "private_channels": [], "relationships": [], "presences": [], "geo_ordered_rtc_regions": [],
            }  # fmt: skip
            await session.dispatch_nolock("READY", ready)
            for g in guilds:
                await session.dispatch_nolock("GUILD_CREATE", self._guild_create_payload(g))

    def _identify_too_soon(self, shard_id: int, shard_count: int) -> bool:
        """Discord's IDENTIFY limit: one per ``identify_interval`` in each max_concurrency bucket, whichever
        connection (or process) it comes from. A refused IDENTIFY does not move the window."""
        bucket = shard_id % max(self.max_concurrency, 1)
        now = time.monotonic()
        with self._lock:
            last = self._last_identify.get(bucket)
            if self.identify_interval > 0 and last is not None and now - last < self.identify_interval:
                self.invalid_sessions.append({"shard": [shard_id, shard_count], "reason": "identify rate limit",
                                              "bucket": bucket, "since_last": now - last, "t": time.time()})  # fmt: skip
                return True
            self._last_identify[bucket] = now
        return False

    async def _resume(self, conn: _Conn, d: Json) -> None:
        if d.get("token") != self.token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        s = self._sessions.get(str(d.get("session_id")))
        seq = int(d.get("seq") or 0)
        if s is None or not s.alive or (s.events and s.events[0]["s"] > seq + 1):
            with self._lock:
                self.invalid_sessions.append({"shard": [s.shard_id, s.shard_count] if s else None,
                                              "reason": "resume", "t": time.time()})  # fmt: skip
            await conn.send({"op": 9, "d": False, "s": None, "t": None})  # client must IDENTIFY again
            return
        old = s.conn
        if old is not None and old is not conn:
            old.server_closed = True
            closing = asyncio.ensure_future(old.ws.close(code=4000))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        async with s.lock:
            s.conn, conn.session, s.disconnected_at = conn, s, None
            missed = [e for e in s.events if e["s"] > seq]
            for event in missed:
                await conn.send(event)
            await s.dispatch_nolock("RESUMED", {"_trace": ["fake-discord"]})
        with self._lock:
            self.resumes.append({"shard": [s.shard_id, s.shard_count], "session_id": s.id, "seq": seq,
                                 "replayed": len(missed), "t": time.time()})  # fmt: skip

    # ---------------------------------------------------------------- control API (for other processes)
    async def _ctl_state(self, request: web.Request) -> web.Response:
        with self._lock:
            guilds = [{"id": g["id"], "name": g["name"], "channels": [(c["id"], c["name"]) for c in g["channels"]]}
                      for g in self.guilds.values()]  # fmt: skip
            users = list(self.users.values())
        return _json({"url": self.url, "ws_url": self.ws_url, "guilds": guilds, "users": users,
                      "identify_count": self.identify_count, "resume_count": self.resume_count,
                      "identifies_per_shard": {str(k): v for k, v in self.identifies_per_shard.items()},
                      "invalid_sessions": list(self.invalid_sessions), "max_concurrency": self.max_concurrency,
                      "identify_interval": self.identify_interval,
                      "connections": {str(k): v for k, v in self.connections.items()}})  # fmt: skip

    async def _ctl_sent(self, request: web.Request) -> web.Response:
        cid = request.query.get("channel_id")
        with self._lock:
            sent = [m for m in self.sent_messages if cid is None or m["channel_id"] == int(cid)]
            return _json({"sent": sent, "edits": list(self.edits), "typing": list(self.typing_calls),
                          "interaction_responses": list(self.interaction_responses)})  # fmt: skip

    async def _ctl_post(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        action = request.match_info["action"]
        try:
            if action == "guilds":
                shard = body.pop("shard", None)
                return _json(self.add_guild(**body, shard=tuple(shard) if shard else None))
            if action == "messages":
                return _json(self.send_user_message(**body))
            if action == "interactions":
                return _json(self.dispatch_interaction(**body))
            if action == "disconnect":
                return _json({"closed": self.disconnect_shard(int(body.get("shard_id", -1)), int(body.get("code", 4000)),
                                                              forget_session=bool(body.get("forget_session")))})  # fmt: skip
            if action == "fail":
                self.fail_next(body.pop("method", "*"), body.pop("path", ".*"), **body)
                return _json({"ok": True})
            if action == "oauth_user":
                return _json(self.set_oauth_user(body.get("user"), body.get("guilds")))
        except (KeyError, TypeError, ValueError) as exc:
            return _json({"error": repr(exc)}, 400)
        return _json({"error": f"unknown action {action}"}, 404)


# -------------------------------------------------------------------- CLI
def _control(port: int, path: str, body: Json | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}/_control/{path}", data=data,
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("serve", "send", "sent", "disconnect", "state"):
        argv.insert(0, "serve")
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.discord_server")
    sub = parser.add_subparsers(dest="cmd", required=True)
    serve = sub.add_parser("serve", help="run the fake (default)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--guilds", type=int, default=1)
    serve.add_argument("--shards", type=int, default=1, help="recommended shard count from /gateway/bot")
    serve.add_argument("--token", default="fake-bot-token")
    serve.add_argument(
        "--max-concurrency", type=int, default=1, help="IDENTIFY buckets, as /gateway/bot reports"
    )
    serve.add_argument("--identify-interval", type=float, default=5.0,
                       help="seconds between IDENTIFYs of one bucket (sooner: invalid session); 0 accepts any pace")  # fmt: skip
    send = sub.add_parser("send", help="inject a user message")
    send.add_argument("--channel", required=True)
    send.add_argument("--author", default=None, help="user id or username (default: alice)")
    send.add_argument("--reply-to", type=int, default=None)
    send.add_argument("text")
    sent = sub.add_parser("sent", help="show what the bot sent")
    sent.add_argument("--channel", default=None)
    disc = sub.add_parser("disconnect", help="close a shard's socket (resumable)")
    disc.add_argument("--shard", type=int, default=-1)
    disc.add_argument("--code", type=int, default=4000)
    state = sub.add_parser("state", help="guilds, users, sessions")
    for p in (serve, send, sent, disc, state):
        p.add_argument("--port", type=int, default=8765)
    args = parser.parse_args(argv)

    if args.cmd == "send":
        msg = _control(args.port, "messages", {"channel_id": int(args.channel), "content": args.text,
                                               "author": args.author, "reply_to": args.reply_to})  # fmt: skip
        print(json.dumps({"id": msg["id"], "channel_id": msg["channel_id"]}))
        return 0
    if args.cmd in ("sent", "state", "disconnect"):
        if args.cmd == "disconnect":
            out = _control(args.port, "disconnect", {"shard_id": args.shard, "code": args.code})
        else:
            out = _control(args.port, "sent" + (f"?channel_id={args.channel}" if args.channel else "")
                           if args.cmd == "sent" else "state")  # fmt: skip
        print(json.dumps(out, indent=2))
        return 0

    fake = FakeDiscord(token=args.token, host=args.host, port=args.port, recommended_shards=args.shards,
                       max_concurrency=args.max_concurrency, identify_interval=args.identify_interval)  # fmt: skip
    fake.start()
    guilds = [fake.add_guild(name=f"Guild {i}", shard=(i % args.shards, args.shards), channels=["general", "random"])
              for i in range(args.guilds)]  # fmt: skip
    fake.set_oauth_user(fake.default_user, [{**g, "owner": True, "permissions": "8"} for g in guilds])
    print(
        f"Fake Discord listening on {fake.url} (gateway {fake.ws_url})\n\nexport these for the bot/dashboard:"
    )
    for key, value in fake.client_env().items():
        print(f"  export {key}={value}")
    for g in guilds:
        chans = ", ".join(f"#{c['name']}={c['id']}" for c in g["channels"])
        shard = shard_of(int(g["id"]), args.shards)
        print(f"guild {g['id']} {g['name']!r} (shard {shard}/{args.shards}): {chans}")
    # The bot answers mentions by default, so the example mentions it.
    print(f"user alice = {fake.default_user['id']}, bot = {fake.bot_user['id']}\n\ninject: {sys.executable} -m "
          f"tests.fakes.discord_server send --port {fake.port} --channel "
          f"{guilds[0]['channels'][0]['id'] if guilds else 'C'} '<@{fake.bot_user['id']}> hello'")  # fmt: skip
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
