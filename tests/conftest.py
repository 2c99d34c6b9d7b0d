"""Shared fixtures. The cast: alice owns the guild, bob is an admin, carol a user, dave an outsider,
staff an operator."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import os
from collections.abc import Iterator
from typing import Any

import pytest

from accounts.models import User
from guilds.models import Channel, Guild, Membership
from tests.support import redis_delete_prefix

# Process helpers live in tests/support.py (bench/ uses them too); tests/test_health.py still imports this one
# from here.
from tests.support import run_python as run_python


# --- What a run leaves behind: nothing ----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's test database, with every connection closed before it is dropped (PostgreSQL refuses to
    drop a database in use). A bot run in a test's own event loop makes its ORM calls through ``sync_to_async``:
    the shared worker thread keeps its connection (closed here, in that thread), and calls made with
    ``thread_sensitive=False`` leave theirs in threads that have ended, reachable only by the garbage collector."""
    yield
    from asgiref.sync import sync_to_async
    from django.db import connections

    with django_db_blocker.unblock():
        asyncio.run(sync_to_async(connections.close_all)())
        connections.close_all()
        gc.collect()


@pytest.fixture(scope="session", autouse=True)
def _redis_keys_deleted():
    """``make test-services`` gives each run a key prefix of its own (parley-test-<pid>) on a Redis database of
    the tests' own: the run's keys (sessions, cache, channel layer, the bots' too) are deleted at the end. Other
    prefixes are left alone: they may be a developer's data."""
    yield
    from django.conf import settings

    prefix = settings.CACHES["default"].get("KEY_PREFIX", "")
    if settings.REDIS_URL and prefix.startswith("parley-test-"):
        redis_delete_prefix(settings.REDIS_URL, prefix)


@pytest.fixture
def guild(db) -> Guild:
    guild = Guild.objects.create_with_settings(
        discord_id=111111111111111111, name="Parley Test Server", owner_discord_id=1001
    )
    Channel.objects.create(guild=guild, discord_id=222222222222222221, name="general")
    Channel.objects.create(guild=guild, discord_id=222222222222222222, name="bots")
    return guild


def _member(guild: Guild, name: str, discord_id: int, role: str | None) -> User:
    user = User.objects.create_user(username=name, discord_id=discord_id, global_name=name.title())
    if role:
        Membership.objects.create(user=user, guild=guild, role=role)
    return user


@pytest.fixture
def alice(guild: Guild) -> User:
    return _member(guild, "alice", 1001, Membership.Role.OWNER)


@pytest.fixture
def bob(guild: Guild) -> User:
    return _member(guild, "bob", 1002, Membership.Role.ADMIN)


@pytest.fixture
def carol(guild: Guild) -> User:
    return _member(guild, "carol", 1003, Membership.Role.USER)


@pytest.fixture
def dave(guild: Guild) -> User:
    return _member(guild, "dave", 1004, None)


@pytest.fixture
def staff(db) -> User:
    return User.objects.create_user(username="operator", password="operator-pass-123", is_staff=True)


@pytest.fixture
def superuser(db) -> User:
    return User.objects.create_superuser(username="root", password="root-pass-123", email="root@example.com")


@pytest.fixture
def fake():
    """The local fake Discord server, with quick heartbeats, for the end-to-end tests (a test file that needs
    other options, or a fake LLM, defines its own ``fake``)."""
    from tests.fakes.discord_server import FakeDiscord

    with FakeDiscord(heartbeat_interval_ms=500) as server:
        yield server


# --- Browser tests ------------------------------------------------------------------------------------------------
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Avatars come from Discord's CDN, which the test browser must not reach: route them to this small blurple PNG.
AVATAR = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mOM0P3/HwAFqAKlm8GVNQAAAABJRU5ErkJggg=="
)


@contextlib.contextmanager
def chromium(monkeypatch: pytest.MonkeyPatch, **context_options: Any) -> Iterator[Any]:
    """A Playwright browser context on Debian's chromium; the test is skipped when chromium is missing."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(
            f"{CHROMIUM} is missing: apt-get install -y chromium (playwright cannot download browsers here)"
        )
    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test itself are still sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from django.db import connections
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(**context_options)
        context.set_default_timeout(10_000)
        yield context
        browser.close()
        # ORM calls made while Playwright's loop runs use a connection of their own (asgiref's context-local
        # storage): close it here, or PostgreSQL refuses to drop the test database at the end.
        connections.close_all()


def log_in(page: Any, live_server: Any, user: User) -> None:
    """Give the browser a session of ``user`` (no login form: Discord OAuth is tested elsewhere)."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
    )


# --- Dashboard (issue 3) ------------------------------------------------------------------------------------------


def settings_post_data(guild: Guild, **changes: object) -> dict[str, object]:
    """The settings form as a browser would post it, from the stored values plus ``changes``."""
    from guilds.models import GuildSettings
    from guilds.services import EDITABLE_FIELDS

    row = GuildSettings.objects.get(guild=guild)
    values = {name: getattr(row, name) for name in EDITABLE_FIELDS} | {"version": row.version} | changes
    data: dict[str, object] = {}
    for name, value in values.items():
        if isinstance(value, bool):
            if value:
                data[name] = "on"  # an unticked checkbox is not posted at all
        elif value is None:
            data[name] = ""
        elif name == "allowed_channel_ids":
            data[name] = [str(item) for item in value]  # type: ignore[attr-defined]
        elif name in ("target_user_ids", "blocked_user_ids"):
            data[name] = ", ".join(str(item) for item in value)  # type: ignore[attr-defined]
        else:
            data[name] = str(value)
    return data


@pytest.fixture
def settings_entry(guild, alice):
    """A ``settings.update`` audit entry (alice changed the prompt), for the revert tests."""
    from audit.models import AuditLog
    from guilds.services import settings_update

    settings_update(guild=guild, actor=alice, changes={"system_prompt": "Be brief."})
    return AuditLog.objects.filter(guild=guild, action="settings.update").latest("id")


@pytest.fixture(autouse=True)
def _fresh_local_cache():
    """Each test starts with an empty local-memory cache (SQLite reuses rolled-back ids, so a key such as
    ``oauth-guilds:<user pk>`` could leak between tests). A shared Redis is left alone: other runs may use it."""
    from django.core.cache import caches
    from django.core.cache.backends.locmem import LocMemCache

    if isinstance(caches["default"], LocMemCache):
        caches["default"].clear()


@pytest.fixture(autouse=True)
def _fast_password_hasher():
    """PBKDF2's million rounds cost ~0.7 s per ``create_user(password=...)``; tests need no slow hash.
    (Not through pytest-django's ``settings`` fixture: some tests parametrize an argument named ``settings``.)"""
    from django.test import override_settings

    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


def auth_queries() -> int:
    """Queries every logged-in request makes before the view: the user, and the session unless it is cached."""
    from django.conf import settings

    return 2 if settings.SESSION_ENGINE == "django.contrib.sessions.backends.db" else 1


# --- WebSockets (issue 13) ----------------------------------------------------------------------------------------
ORIGIN = b"http://127.0.0.1"


def _session_cookie(user: User | None) -> bytes:
    from django.conf import settings
    from django.test import Client

    if user is None:
        return b""
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


async def open_socket(path: str, user: User | None = None, origin: bytes = ORIGIN) -> tuple[Any, bool, int]:
    """``(communicator, connected, close code)`` for ``path`` through config.asgi's router (the login, the
    Origin check), as ``user`` (None: logged out). Needs ``transactional_db``: the consumers query from
    other threads."""
    from asgiref.sync import sync_to_async
    from channels.testing import WebsocketCommunicator

    from config.asgi import application

    headers = [(b"origin", origin), (b"host", b"127.0.0.1")]
    if user is not None:
        headers.append((b"cookie", await sync_to_async(_session_cookie)(user)))
    communicator = WebsocketCommunicator(application, path, headers)
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code
