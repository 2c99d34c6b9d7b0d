"""Shared fixtures. The cast (STYLE.md): alice owns the guild, bob is an admin, carol a user, dave an outsider,
staff an operator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from accounts.models import User
from guilds.models import Channel, Guild, Membership

ROOT = Path(__file__).resolve().parent.parent


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


def subprocess_env(**overrides: str) -> dict[str, str]:
    """Environment for a child process (runbot, manage.py) that must use the test database."""
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        env["SQLITE_PATH"] = str(db["NAME"])
    else:
        env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env.update(overrides)
    return env


def run_python(code: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
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
        elif name == "target_user_ids":
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
