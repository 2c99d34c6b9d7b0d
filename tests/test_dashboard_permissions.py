"""Every dashboard and API URL x every role x GET/POST gets the status it should, and every POST needs the
CSRF token. A URL added to any app's urls.py without a row here fails the coverage test."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from audit.models import AuditLog
from guilds.models import ChannelSettings, Guild, GuildSettings, Membership, RoleSettings
from llm.models import ProviderKey
from tests.conftest import settings_post_data

ROLES = ("anonymous", "dave", "carol", "bob", "alice", "staff")
GENERAL = 222222222222222221
ROLE = 333333333333333333
LOGIN = 302  # anonymous: redirected to the login page
DONE = 302  # a successful form POST redirects (post/redirect/get)
BACKUP_FILE = b'{"format": "parley-config", "version": 1, "settings": {"temperature": 0.9}}'


class World:
    """The fixture cast plus what the URLs point at."""

    def __init__(self, guild: Guild, users: dict[str, Any]) -> None:
        self.guild = guild
        self.users = users
        self.g = guild.discord_id
        ChannelSettings.objects.create(guild=guild, channel_id=GENERAL, system_prompt="Override")
        RoleSettings.objects.create(guild=guild, role_id=ROLE, system_prompt="For this role")
        self.carol_membership = Membership.objects.get(user=users["carol"]).pk
        ProviderKey.objects.create(guild=guild, provider="anthropic", encrypted_key="-", last4="abcd")
        self.entry = AuditLog.objects.create(
            action="settings.update", guild=guild, changes={"temperature": [0.5, 0.7]}
        ).pk


# name -> (url, POST data, {method: expected statuses in ROLES order})
CASES: dict[
    str, tuple[Callable[[World], str], Callable[[World], dict[str, Any]], dict[str, tuple[int, ...]]]
] = {
    "accounts:me": (
        lambda w: reverse("accounts:me"),
        lambda w: {},
        {"GET": (401, 200, 200, 200, 200, 200), "POST": (405,) * 6},
    ),
    "accounts:discord_login": (
        lambda w: reverse("accounts:discord_login"),
        lambda w: {},
        {"GET": (302,) * 6, "POST": (405,) * 6},
    ),
    "guilds:list": (
        lambda w: reverse("guilds:list"),
        lambda w: {},
        {"GET": (LOGIN, 200, 200, 200, 200, 200), "POST": (LOGIN, 405, 405, 405, 405, 405)},
    ),
    "guilds:settings": (
        lambda w: reverse("guilds:settings", args=[w.g]),
        lambda w: settings_post_data(w.guild, temperature="0.9"),
        {"GET": (LOGIN, 404, 200, 200, 200, 200), "POST": (LOGIN, 404, 403, DONE, DONE, DONE)},
    ),
    "guilds:override": (
        lambda w: reverse("guilds:override", args=[w.g]),
        lambda w: {"override-channel_id": GENERAL, "override-system_prompt": "Changed"},
        {"GET": (LOGIN, 404, 403, 200, 200, 200), "POST": (LOGIN, 404, 403, DONE, DONE, DONE)},
    ),
    "guilds:override_remove": (
        lambda w: reverse("guilds:override_remove", args=[w.g, GENERAL]),
        lambda w: {"confirmed": "yes"},
        {"GET": (LOGIN, 405, 405, 405, 405, 405), "POST": (LOGIN, 404, 403, DONE, DONE, DONE)},
    ),
    "guilds:role_override": (
        lambda w: reverse("guilds:role_override", args=[w.g]),
        lambda w: {"role-role_id": ROLE, "role-system_prompt": "Changed"},
        {"GET": (LOGIN, 404, 403, 200, 200, 200), "POST": (LOGIN, 404, 403, DONE, DONE, DONE)},
    ),
    "guilds:role_override_remove": (
        lambda w: reverse("guilds:role_override_remove", args=[w.g, ROLE]),
        lambda w: {"confirmed": "yes"},
        {"GET": (LOGIN, 405, 405, 405, 405, 405), "POST": (LOGIN, 404, 403, DONE, DONE, DONE)},
    ),
    "guilds:members": (
        lambda w: reverse("guilds:members", args=[w.g]),
        lambda w: {"user": "5555", "role": "USER"},
        {"GET": (LOGIN, 404, 403, 200, 200, 200), "POST": (LOGIN, 404, 403, DONE, DONE, DONE)},
    ),
    "guilds:member_role": (
        lambda w: reverse("guilds:member_role", args=[w.g, w.carol_membership]),
        lambda w: {"role": "ADMIN", "confirmed": "yes"},
        {"GET": (LOGIN, 405, 405, 405, 405, 405), "POST": (LOGIN, 404, 403, DONE, DONE, DONE)},
    ),
    "guilds:member_remove": (
        lambda w: reverse("guilds:member_remove", args=[w.g, w.carol_membership]),
        lambda w: {"confirmed": "yes"},
        {"GET": (LOGIN, 405, 405, 405, 405, 405), "POST": (LOGIN, 404, 403, DONE, DONE, DONE)},
    ),
    "guilds:backup": (
        lambda w: reverse("guilds:backup", args=[w.g]),
        lambda w: {"file": SimpleUploadedFile("parley.json", BACKUP_FILE, content_type="application/json")},
        {"GET": (LOGIN, 404, 403, 200, 200, 200), "POST": (LOGIN, 404, 403, 200, 200, 200)},  # the preview
    ),
    "guilds:backup_export": (
        lambda w: reverse("guilds:backup_export", args=[w.g]),
        lambda w: {},
        {"GET": (LOGIN, 404, 403, 200, 200, 200), "POST": (LOGIN, 405, 405, 405, 405, 405)},
    ),
    "audit:log": (
        lambda w: reverse("audit:log", args=[w.g]),
        lambda w: {},
        {"GET": (LOGIN, 404, 403, 200, 200, 200), "POST": (LOGIN, 405, 405, 405, 405, 405)},
    ),
    "audit:export": (
        lambda w: reverse("audit:export", args=[w.g]) + "?format=csv",
        lambda w: {},
        {"GET": (LOGIN, 404, 403, 200, 200, 200), "POST": (LOGIN, 405, 405, 405, 405, 405)},
    ),
    "audit:revert": (
        lambda w: reverse("audit:revert", args=[w.g, w.entry]),
        lambda w: {"confirmed": "yes", "version": GuildSettings.objects.get(guild=w.guild).version},
        {"GET": (LOGIN, 405, 405, 405, 405, 405), "POST": (LOGIN, 404, 403, DONE, DONE, DONE)},
    ),
    "llm:usage": (
        lambda w: reverse("llm:usage", args=[w.g]),
        lambda w: {},
        {"GET": (LOGIN, 404, 403, 200, 200, 200), "POST": (LOGIN, 405, 405, 405, 405, 405)},
    ),
    "llm:playground": (
        lambda w: reverse("llm:playground", args=[w.g]),
        lambda w: {"message": "hello", "system_prompt": "", "model": "offline/parley-offline"},
        {"GET": (LOGIN, 404, 403, 200, 200, 200), "POST": (LOGIN, 404, 403, 200, 200, 200)},
    ),
    "llm:keys": (
        lambda w: reverse("llm:keys", args=[w.g]),
        lambda w: {"provider": "openai", "api_key": "sk-matrix-key-1234"},
        {"GET": (LOGIN, 404, 403, 200, 200, 200), "POST": (LOGIN, 404, 403, 403, DONE, DONE)},
    ),
    "llm:key_remove": (
        lambda w: reverse("llm:key_remove", args=[w.g, "anthropic"]),
        lambda w: {"confirmed": "yes"},
        {"GET": (LOGIN, 405, 405, 405, 405, 405), "POST": (LOGIN, 404, 403, 403, DONE, DONE)},
    ),
    "llm:dm_usage": (
        lambda w: reverse("llm:dm_usage"),
        lambda w: {},
        {"GET": (LOGIN, 403, 403, 403, 403, 200), "POST": (LOGIN, 405, 405, 405, 405, 405)},
    ),
    "botcore:status": (
        lambda w: reverse("botcore:status"),
        lambda w: {},
        {"GET": (LOGIN, 403, 403, 403, 403, 200), "POST": (405,) * 6},
    ),
    "botcore:inspector": (
        lambda w: reverse("botcore:inspector", args=[w.g]),
        lambda w: {},
        {"GET": (LOGIN, 404, 403, 200, 200, 200), "POST": (LOGIN, 405, 405, 405, 405, 405)},
    ),
    "botcore:shards-api": (
        lambda w: reverse("botcore:shards-api"),
        lambda w: {},
        {"GET": (401, 403, 403, 403, 403, 200), "POST": (405,) * 6},
    ),
    "health": (
        lambda w: reverse("health"),
        lambda w: {},
        {"GET": (200,) * 6, "POST": (405,) * 6},
    ),
}
ALICE = ROLES.index("alice")
POST_URLS = [name for name, (_, _, expected) in CASES.items() if expected["POST"][ALICE] != 405]


@pytest.fixture
def world(guild, alice, bob, carol, dave, staff, settings) -> World:
    settings.PARLEY_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # servers may store keys of their own
    return World(guild, {"alice": alice, "bob": bob, "carol": carol, "dave": dave, "staff": staff})


def _names(patterns: list[URLPattern | URLResolver], namespace: str) -> set[str]:
    return {f"{namespace}:{p.name}" for p in patterns if isinstance(p, URLPattern) and p.name}


def test_every_url_is_in_the_matrix():
    resolver = get_resolver()
    names = set()
    for namespace in ("guilds", "audit", "llm", "accounts", "botcore"):
        _, sub = resolver.namespace_dict[namespace]
        names |= _names(sub.url_patterns, namespace)
    assert names <= set(CASES), f"add these URLs to the permission matrix: {sorted(names - set(CASES))}"


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("role", ROLES)
def test_permission_matrix(client, world, name, method, role):
    url, data, expected = CASES[name]
    if role != "anonymous":
        client.force_login(world.users[role])
    target = url(world)
    response = client.get(target) if method == "GET" else client.post(target, data(world))
    want = expected[method][ROLES.index(role)]
    assert response.status_code == want, f"{role} {method} {target}"
    if role == "anonymous" and want == LOGIN and ":" in name and not name.startswith("accounts:"):
        assert response["Location"].startswith(settings.LOGIN_URL)


@pytest.mark.parametrize("name", POST_URLS)
def test_csrf_is_enforced_on_every_post(world, name):
    url, data, expected = CASES[name]
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(world.users["alice"])
    entries = AuditLog.objects.count()
    response = csrf_client.post(url(world), data(world))
    assert response.status_code == 403
    assert AuditLog.objects.count() == entries
    # With the token (as the page's forms and htmx's X-CSRFToken header send it) the same POST goes through.
    csrf_client.get(reverse("guilds:settings", args=[world.g]))
    token = csrf_client.cookies[settings.CSRF_COOKIE_NAME].value
    response = csrf_client.post(url(world), data(world), HTTP_X_CSRFTOKEN=token)
    assert response.status_code == expected["POST"][ALICE]


# --- WebSockets: each socket refuses whom its page refuses ------------------------------------------------------
OPEN = "open"
# name -> (path, the socket's answer in ROLES order: OPEN, or the close code of the refusal)
SOCKETS: dict[str, tuple[Callable[[World], str], tuple[str | int, ...]]] = {
    "llm:playground": (
        lambda w: f"/ws/guilds/{w.g}/playground/",
        (4401, 4404, 4403, OPEN, OPEN, OPEN),
    ),
    "audit:log": (
        lambda w: f"/ws/guilds/{w.g}/audit/",
        (4401, 4404, 4403, OPEN, OPEN, OPEN),
    ),
    "botcore:status": (
        lambda w: "/ws/status/",
        (4401, 4403, 4403, 4403, 4403, OPEN),
    ),
}


def test_every_socket_is_in_the_matrix():
    from config.asgi import websocket_urlpatterns

    routes = {str(pattern.pattern) for pattern in websocket_urlpatterns}
    covered = {
        "ws/guilds/<int:guild_id>/playground/",
        "ws/guilds/<int:guild_id>/audit/",
        "ws/status/",
    }
    assert routes == covered, "add new sockets to SOCKETS"


@pytest.mark.asyncio
@pytest.mark.parametrize("name", list(SOCKETS))
@pytest.mark.parametrize("role", ROLES)
async def test_socket_permission_matrix(transactional_db, world, name, role):
    from tests.conftest import open_socket

    path, expected = SOCKETS[name]
    want = expected[ROLES.index(role)]
    _, _, page_expected = CASES[name]
    page_status = page_expected["GET"][ROLES.index(role)]
    assert (want == OPEN) == (page_status == 200), "a socket opens exactly where its page does"
    communicator, connected, code = await open_socket(path(world), world.users.get(role))
    try:
        assert (OPEN if connected else code) == want, f"{role} {path(world)}"
    finally:
        await communicator.disconnect()


@pytest.mark.asyncio
async def test_sockets_check_the_origin(transactional_db, world):
    from tests.conftest import open_socket

    communicator, connected, _ = await open_socket(
        f"/ws/guilds/{world.g}/audit/", world.users["alice"], origin=b"https://evil.example"
    )
    assert not connected
    await communicator.disconnect()
