"""Someone added by Discord id before their first login gets their Discord names at that login (the whole login
over real HTTP against the fake Discord, like tests/test_discord_login_flow.py)."""

from __future__ import annotations

import pytest

from accounts.models import User
from guilds import services
from guilds.models import Membership
from tests.test_discord_login_flow import browser, start_login
from tests.test_discord_login_flow import fake_discord as fake_discord
from tests.test_discord_login_flow import oauth as oauth

pytestmark = pytest.mark.django_db(transaction=True)


def log_in(live_server, oauth, profile: dict[str, str]) -> None:
    oauth.set_oauth_user(profile, guilds=[])
    session = browser()
    authorize = start_login(session, live_server.url)
    callback = session.get(authorize.headers["Location"], allow_redirects=False, timeout=10)
    session.get(callback.headers["Location"], allow_redirects=False, timeout=10)


def test_a_member_added_by_id_gets_their_discord_names_at_first_login(live_server, oauth, guild, alice):
    added = services.member_add(guild=guild, actor=alice, user_or_discord_id=987654321, role="ADMIN").user
    assert (added.username, added.display_name) == ("discord-987654321", "Discord user 987654321")
    log_in(
        live_server, oauth, {"id": "987654321", "username": "frank", "global_name": "Frank", "avatar": "f1"}
    )
    added.refresh_from_db()
    assert (added.username, added.global_name, added.avatar) == ("frank", "Frank", "f1")
    assert added.display_name == "Frank" and "f1" in added.avatar_url
    assert Membership.objects.get(user=added).role == "ADMIN"  # the same account, claimed
    assert User.objects.filter(discord_id=987654321).count() == 1


def test_a_taken_username_gets_a_unique_variant(live_server, oauth, guild, alice):
    User.objects.create_user(username="frank", discord_id=5)
    added = services.member_add(guild=guild, actor=alice, user_or_discord_id=987654321, role="USER").user
    log_in(live_server, oauth, {"id": "987654321", "username": "frank", "global_name": "Frank"})
    added.refresh_from_db()
    assert added.username.startswith("frank") and added.username != "frank"
    assert added.display_name == "Frank"


def test_a_chosen_username_is_kept_at_later_logins(live_server, oauth, guild, alice):
    """Only the placeholder is replaced: a username that is not ``discord-<id>`` stays as it is."""
    log_in(live_server, oauth, {"id": "1001", "username": "alice_renamed", "global_name": "Alice R."})
    alice.refresh_from_db()
    assert (alice.username, alice.global_name) == ("alice", "Alice R.")
