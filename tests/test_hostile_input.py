"""Hostile input never makes a 500, never changes a row and never writes an audit entry.

Every form field and query parameter of every dashboard URL gets each value of HOSTILE, for every role (alice the
owner, bob an admin, carol a user, dave an outsider, staff an operator, and someone logged out). A value that is
genuinely acceptable for a field (``may_accept``: "0" is a fine history depth, an empty fallback model means none)
is only checked for the 500.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

import pytest
from cryptography.fernet import Fernet
from django.test import Client
from django.urls import reverse

from accounts.models import User
from audit.models import AuditLog
from guilds.models import ChannelSettings, Guild, GuildSettings, Membership, RoleSettings, parse_discord_id
from llm.models import ProviderKey
from tests.conftest import settings_post_data

GENERAL = 222222222222222221  # a channel of the test guild (conftest)
ROLE = 333333333333333333  # a Discord role with an override

HOSTILE: dict[str, str] = {
    "superscript-two": "²",  # str.isdigit() says yes, int() says no
    "arabic-indic-three": "٣",  # int() reads it as 3
    "25-digits": "1" * 25,  # past a BIGINT
    "minus-one": "-1",
    "zero": "0",
    "exponent": "1e9",
    "400-nines": "9" * 400,
    "nul": "\x00",  # PostgreSQL text cannot hold it
    "nul-inside": "12\x0034",
    "rtl-mark": "\u202e",
    "lone-surrogate": "\ud800",  # sent as the invalid UTF-8 b"\xed\xa0\x80"
    "1-mb": "x" * 1_000_000,
    "empty": "",
    "whitespace": " \t\n ",
}


# --- What a field may legitimately accept ------------------------------------------------------------------------


def never(value: str) -> bool:
    return False


def always(value: str) -> bool:
    return True


def blank(value: str) -> bool:
    return not value.strip()


def text(max_length: int, *, required: bool = False) -> Callable[[str], bool]:
    def accepts(value: str) -> bool:
        stripped = value.strip()
        return "\x00" not in value and len(stripped) <= max_length and (bool(stripped) or not required)

    return accepts


def number(
    parse: Callable[[str], Any], low: float, high: float, *, required: bool = True
) -> Callable[[str], bool]:
    """Mirrors Django's number fields: stripped, then ``int``/``float``/``Decimal`` (which read any Unicode
    digit), then the bounds."""

    def accepts(value: str) -> bool:
        if not value.strip():
            return not required
        try:
            return low <= parse(value.strip()) <= high
        except (ValueError, InvalidOperation):
            return False

    return accepts


SETTINGS_FIELDS: dict[str, Callable[[str], bool]] = {
    "enabled": always,  # a checkbox: any value is ticked or not
    "reply_on_mention": always,
    "streaming": always,
    "allowed_channel_ids": never,
    "target_user_ids": blank,
    "blocked_user_ids": blank,
    "system_prompt": text(4000),
    "model": never,
    "fallback_model": blank,
    "temperature": number(float, 0, 2),
    "max_output_tokens": number(int, 16, 8192),
    "history_messages": number(int, 0, 50),
    "daily_budget_usd": number(Decimal, 0, 10**8 - 1, required=False),
    "user_messages_per_minute": number(int, 0, 32767, required=False),
    "user_messages_per_day": number(int, 0, 2**31 - 1, required=False),
    "version": never,  # any other number is a stale form
}


def api_key(value: str) -> bool:
    """A provider's API key: printable ASCII without spaces, 8 to 500 characters (guilds/provider_keys.py)."""
    key = value.strip()
    return key.isascii() and key.isprintable() and " " not in key and 8 <= len(key) <= 500


# --- The URLs ----------------------------------------------------------------------------------------------------


@dataclass
class World:
    guild: Guild
    carol_membership: int

    def args(self, route: str) -> list[int | str]:
        """The ids a route takes: the guild, then carol's membership or the overridden channel."""
        if route in {"guilds:member_role", "guilds:member_remove"}:
            return [self.guild.discord_id, self.carol_membership]
        if route == "guilds:override_remove":
            return [self.guild.discord_id, GENERAL]
        if route == "guilds:role_override_remove":
            return [self.guild.discord_id, ROLE]
        if route == "llm:key_remove":
            return [self.guild.discord_id, "openai"]
        if route in GUILD_ROUTES:
            return [self.guild.discord_id]
        return []


@dataclass
class Target:
    route: str  # the URL's name
    method: str
    fields: dict[str, Callable[[str], bool]]
    base: Callable[[World], dict[str, Any]] = lambda w: {}
    headers: dict[str, str] = field(default_factory=dict)

    def url(self, w: World) -> str:
        return reverse(self.route, args=w.args(self.route))

    @property
    def label(self) -> str:
        return f"{self.method}-{self.route.split(':')[1]}{'-htmx' if self.headers else ''}"


GUILD_ROUTES = {
    "guilds:settings",
    "guilds:override",
    "guilds:override_remove",
    "guilds:role_override",
    "guilds:role_override_remove",
    "guilds:members",
    "guilds:member_role",
    "guilds:member_remove",
    "guilds:backup",
    "guilds:backup_export",
    "audit:log",
    "audit:export",
    "llm:usage",
    "llm:playground",
    "llm:keys",
    "llm:key_remove",
    "botcore:inspector",
}
NO_PARAMS = {"page": never}  # pages with no parameter of their own still get a stray one

TARGETS = [
    Target("guilds:list", "GET", NO_PARAMS),
    Target("guilds:settings", "GET", {"channel": never}),
    Target("guilds:settings", "POST", SETTINGS_FIELDS, base=lambda w: settings_post_data(w.guild)),
    Target("guilds:override", "GET", {"channel": never}),
    Target(
        "guilds:override",
        "POST",
        {
            "override-channel_id": never,
            "override-system_prompt": text(4000),
            "override-model": blank,
            "override-mode": blank,
            # Only "no cooldown" goes with the server's rules (the base's mode).
            "override-cooldown_seconds": number(int, 0, 0, required=False),
        },
        base=lambda w: {"override-channel_id": str(GENERAL), "override-system_prompt": "Be brief."},
    ),
    Target("guilds:override_remove", "POST", {"confirmed": never}),
    Target("guilds:role_override", "GET", {"role": never}),
    Target(
        "guilds:role_override",
        "POST",
        {"role-role_id": never, "role-system_prompt": text(4000), "role-model": blank},
        base=lambda w: {"role-role_id": str(ROLE), "role-system_prompt": "Be brief."},
    ),
    Target("guilds:role_override_remove", "POST", {"confirmed": never}),
    Target("guilds:members", "GET", {"q": always, "page": never}),
    Target(
        "guilds:members",
        "POST",
        {"user": never, "role": never},
        base=lambda w: {"user": "424242", "role": "USER"},
    ),
    Target(
        "guilds:member_role",
        "POST",
        {"role": never, "confirmed": never},
        base=lambda w: {"role": "ADMIN", "confirmed": "yes"},
    ),
    Target("guilds:member_remove", "POST", {"confirmed": never}),
    Target("guilds:backup", "GET", NO_PARAMS),
    # The file itself: tests/test_backup_view.py. Here the preview's confirmation, with a signed payload.
    Target(
        "guilds:backup",
        "POST",
        {"confirmed": never, "payload": never},
        base=lambda w: {"confirmed": "yes", "payload": ""},
    ),
    Target("guilds:backup_export", "GET", NO_PARAMS),
    Target("audit:log", "GET", {"action": never, "actor": never, "before": never}),
    Target(
        "audit:export",
        "GET",
        {"format": never, "action": never, "actor": never},
        base=lambda w: {"format": "csv"},
    ),
    Target("llm:usage", "GET", NO_PARAMS),
    Target("llm:dm_usage", "GET", NO_PARAMS),
    Target("llm:playground", "GET", NO_PARAMS),
    Target(
        "llm:playground",
        "POST",
        {"message": text(4000, required=True), "system_prompt": text(4000), "model": never},
        base=lambda w: {"message": "Hello", "system_prompt": "Be brief.", "model": w.guild.settings.model},
    ),
    Target("llm:keys", "GET", NO_PARAMS),
    Target(
        "llm:keys",
        "POST",
        {"provider": never, "api_key": api_key},
        base=lambda w: {"provider": "openai", "api_key": "sk-a-fine-key-1234"},
    ),
    Target("llm:key_remove", "POST", {"confirmed": never}),
    Target("botcore:status", "GET", {"q": never, "page": never}),
    Target(
        "botcore:status",
        "GET",
        {"q": never, "page": never},
        headers={"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "guild-list"},
    ),
    Target("botcore:inspector", "GET", {"reason": never, "channel": never, "author": never, "before": never}),
    Target("accounts:me", "GET", NO_PARAMS),
    Target("accounts:discord_login", "GET", {"next": never}),
    Target("botcore:shards-api", "GET", NO_PARAMS),
]
# Left out: the audit log's revert (its own tests; another change reworks it).
NOT_TARGETED = {"audit:revert"}


def cases() -> list[Any]:
    return [
        pytest.param(target, name, id=f"{target.label}-{name}")
        for target in TARGETS
        for name in target.fields
    ]


# --- Helpers -----------------------------------------------------------------------------------------------------


def encode(data: dict[str, Any]) -> str:
    # surrogatepass: a lone surrogate goes out as the invalid UTF-8 a hostile client would send
    return urlencode(data, doseq=True, encoding="utf-8", errors="surrogatepass")


def snapshot() -> tuple[Any, ...]:
    tables = [GuildSettings, ChannelSettings, RoleSettings, Membership, User, ProviderKey]
    rows = tuple(tuple(model.objects.order_by("pk").values_list()) for model in tables)  # type: ignore[attr-defined]
    return (*rows, AuditLog.objects.count())


@pytest.fixture
def world(guild, alice, bob, carol, dave, staff, settings) -> tuple[World, dict[str, Client]]:
    settings.PARLEY_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # owners may store keys of their own
    ChannelSettings.objects.create(guild=guild, channel_id=GENERAL, system_prompt="Be kind.")
    RoleSettings.objects.create(guild=guild, role_id=ROLE, system_prompt="Be kind.")
    clients = {}
    for name, user in {"alice": alice, "bob": bob, "carol": carol, "dave": dave, "staff": staff}.items():
        clients[name] = Client(raise_request_exception=False)
        clients[name].force_login(user)
    clients["anonymous"] = Client(raise_request_exception=False)
    guild.refresh_from_db()
    carol_membership = Membership.objects.get(user=carol, guild=guild).pk
    return World(guild=guild, carol_membership=carol_membership), clients


def send(client: Client, target: Target, w: World, data: dict[str, Any]) -> Any:
    url = target.url(w)
    if target.method == "GET":
        return client.get(f"{url}?{encode(data)}", **target.headers)  # type: ignore[arg-type]
    return client.post(
        url,
        encode(data),
        content_type="application/x-www-form-urlencoded",
        **target.headers,  # type: ignore[arg-type]
    )


# --- The tests ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("target", "name"), cases())
def test_hostile_values_are_refused_cleanly(world, target: Target, name: str):
    w, clients = world
    may_accept = target.fields[name]
    failures = []
    for role, client in clients.items():
        for label, value in HOSTILE.items():
            base = target.base(w)
            data = {**base, name: [value] if isinstance(base.get(name), list) else value}
            before = snapshot()
            response = send(client, target, w, data)
            if response.status_code >= 500:
                failures.append(f"{role} {label}: {response.status_code}")
            elif target.method == "POST" and not may_accept(value) and snapshot() != before:
                failures.append(f"{role} {label}: changed rows or wrote an audit entry")
    assert not failures, f"{target.method} {target.url(w)} {name}:\n" + "\n".join(failures)


PATH_IDS = {"zero": 0, "25-digits": int("1" * 25), "400-nines": int("9" * 400)}


@pytest.mark.parametrize(
    "target", [t for t in TARGETS if t.route in GUILD_ROUTES and not t.headers], ids=lambda t: t.label
)
def test_hostile_ids_in_the_path_are_not_found(world, target: Target):
    """``<int:...>`` lets only ASCII digits through, but of any length: a 25-digit guild, member or channel id
    must be a 404 (or a clean refusal), not an overflow."""
    w, clients = world
    failures = []
    args = w.args(target.route)
    for role, client in clients.items():
        for label, bad in PATH_IDS.items():
            for index in range(len(args)):
                url = reverse(target.route, args=[*args[:index], bad, *args[index + 1 :]])
                before = snapshot()
                method = client.get if target.method == "GET" else client.post
                response = method(url, target.base(w))
                if response.status_code >= 500:
                    failures.append(f"{role} {label} as id {index}: {response.status_code}")
                elif snapshot() != before:
                    failures.append(f"{role} {label} as id {index}: changed rows")
    assert not failures, f"{target.route}:\n" + "\n".join(failures)


def test_every_dashboard_url_is_covered():
    """A new page or API view gets its fields added to TARGETS."""
    from django.urls import get_resolver

    names = set()
    for namespace in ("guilds", "audit", "llm", "botcore", "accounts"):
        _prefix, resolver = get_resolver().namespace_dict[namespace]
        names |= {f"{namespace}:{name}" for name in resolver.reverse_dict if isinstance(name, str)}
    assert names - NOT_TARGETED == {t.route for t in TARGETS}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", 1),
        ("111111111111111111", 111111111111111111),
        (str(2**63 - 1), 2**63 - 1),
        (str(2**63), None),
        ("0", None),
        ("00", None),
        ("-1", None),
        ("+1", None),
        ("1" * 25, None),
        ("²", None),
        ("٣", None),
        ("1_000", None),
        (" 1", None),
        ("1\n", None),
        ("", None),
    ],
)
def test_parse_discord_id_takes_ascii_digits_in_range(text, expected):
    assert parse_discord_id(text) == expected
