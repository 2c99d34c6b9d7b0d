"""The whole Discord login over real HTTP: Parley's login page -> the fake Discord's /oauth2/authorize -> the
callback with code and state -> token exchange (with PKCE) -> profile and guild list -> logged in."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from accounts.models import User
from audit.models import AuditLog
from guilds.models import Membership
from tests.fakes.discord_server import FakeDiscord

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fake_discord():
    with FakeDiscord() as fake:
        yield fake


@pytest.fixture
def oauth(settings, fake_discord):
    """Point the Discord provider at the fake, the way DISCORD_OAUTH_BASE / DISCORD_CLIENT_ID do in production."""
    settings.DISCORD_OAUTH_BASE = fake_discord.url
    settings.DISCORD_CLIENT_ID = fake_discord.oauth_client_id
    app = {"client_id": fake_discord.oauth_client_id, "secret": fake_discord.oauth_client_secret}
    settings.SOCIALACCOUNT_PROVIDERS = {
        "discord": {**settings.SOCIALACCOUNT_PROVIDERS["discord"], "APPS": [app]}
    }
    return fake_discord


def browser() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy between us and 127.0.0.1
    return session


def start_login(session: requests.Session, base: str) -> requests.Response:
    """Open the login page and press "Log in with Discord" (a POST with the CSRF token)."""
    page = session.get(f"{base}/accounts/login/?next=/dashboard/", timeout=10)
    assert page.status_code == 200 and "Log in with Discord" in page.text
    response = session.post(
        f"{base}/accounts/discord/login/",
        data={"csrfmiddlewaretoken": session.cookies["csrftoken"], "next": "/dashboard/"},
        headers={"Referer": f"{base}/accounts/login/"},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302
    return response


def test_login_creates_the_user_and_bootstraps_ownership(live_server, oauth, guild, settings):
    settings.OPERATOR_DISCORD_IDS = [5005]
    oauth.set_oauth_user(
        {"id": "5005", "username": "erin", "global_name": "Erin", "avatar": "a1b2"},
        guilds=[
            {"id": guild.discord_id, "name": guild.name, "owner": True},
            {"id": 999, "name": "Erin's other server", "permissions": 0x20},
        ],
    )
    session = browser()
    authorize = start_login(session, live_server.url)
    location = urlsplit(authorize.headers["Location"])
    query = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{oauth.url}/oauth2/authorize"
    assert set(query["scope"][0].split()) == {"identify", "guilds"} and query["response_type"] == ["code"]
    assert query["client_id"] == [oauth.oauth_client_id] and query["state"]
    assert query["code_challenge_method"] == ["S256"]

    callback = session.get(authorize.headers["Location"], allow_redirects=False, timeout=10)
    assert (
        callback.status_code == 302 and "/accounts/discord/login/callback/?" in callback.headers["Location"]
    )
    landed = session.get(callback.headers["Location"], allow_redirects=False, timeout=10)
    assert landed.status_code == 302 and landed.headers["Location"] == "/dashboard/"

    me = session.get(f"{live_server.url}/api/v1/auth/me", timeout=10).json()
    assert me["user"]["discord_id"] == "5005" and me["user"]["display_name"] == "Erin"
    assert me["user"]["is_staff"] is True  # an operator
    assert me["memberships"] == [
        {
            "guild_id": str(guild.discord_id),
            "guild_name": guild.name,
            "icon_url": "",
            "role": "OWNER",
            "bot_active": True,
        }
    ]
    erin = User.objects.get(discord_id=5005)
    assert (erin.username, erin.avatar, erin.has_usable_password()) == ("erin", "a1b2", False)
    entry = AuditLog.objects.get(action="member.add")
    assert (entry.actor_label, entry.target, entry.changes) == (
        "system",
        "user:5005",
        {"role": [None, "OWNER"]},
    )
    assert [r["endpoint"] for r in oauth.oauth_requests] == ["authorize", "token", "me", "guilds"]
    assert oauth.oauth_requests[1]["params"]["code_verifier"]  # PKCE

    dashboard = session.get(f"{live_server.url}/dashboard/", timeout=10)
    assert "Erin&#x27;s other server" in dashboard.text and "Add Parley" in dashboard.text


def test_login_claims_the_account_of_someone_added_by_id(live_server, oauth, guild, alice):
    """alice (Discord id 1001) was added before she ever logged in; guild.owner_discord_id is hers too."""
    oauth.set_oauth_user({"id": "1001", "username": "alice_d", "global_name": "Alice D."}, guilds=[])
    session = browser()
    authorize = start_login(session, live_server.url)
    callback = session.get(authorize.headers["Location"], allow_redirects=False, timeout=10)
    session.get(callback.headers["Location"], allow_redirects=False, timeout=10)
    me = session.get(f"{live_server.url}/api/v1/auth/me", timeout=10).json()
    assert me["user"]["id"] == alice.pk and me["user"]["global_name"] == "Alice D."
    assert [m["role"] for m in me["memberships"]] == ["OWNER"]
    assert User.objects.count() == 1 and Membership.objects.count() == 1
    assert not AuditLog.objects.exists()  # she already was the owner


def test_a_wrong_state_is_refused(live_server, oauth, guild):
    oauth.set_oauth_user({"id": "5005", "username": "erin"}, guilds=[])
    session = browser()
    authorize = start_login(session, live_server.url)
    callback = session.get(authorize.headers["Location"], allow_redirects=False, timeout=10)
    url = urlsplit(callback.headers["Location"])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    forged = url._replace(query=urlencode({**query, "state": "forged-state"})).geturl()
    response = session.get(forged, allow_redirects=False, timeout=10)
    assert response.status_code == 401 and "Login failed" in response.text
    assert session.get(f"{live_server.url}/api/v1/auth/me", timeout=10).status_code == 401
    assert not User.objects.filter(discord_id=5005).exists()
    assert [r["endpoint"] for r in oauth.oauth_requests] == ["authorize"]  # no token was ever asked for


def test_a_failing_guild_list_does_not_break_login(live_server, oauth, guild):
    oauth.set_oauth_user({"id": "1001", "username": "alice"}, guilds=[])
    oauth.fail_next("GET", r"users/@me/guilds", status=500)
    session = browser()
    authorize = start_login(session, live_server.url)
    callback = session.get(authorize.headers["Location"], allow_redirects=False, timeout=10)
    landed = session.get(callback.headers["Location"], allow_redirects=False, timeout=10)
    assert landed.headers["Location"] == "/dashboard/"
    assert any(r["path"] == "/api/users/@me/guilds" and r["status"] == 500 for r in oauth.requests)
    me = session.get(f"{live_server.url}/api/v1/auth/me", timeout=10).json()
    assert [m["role"] for m in me["memberships"]] == ["OWNER"]  # from the guild's owner id


def log_in_with_discord(base: str) -> requests.Session:
    session = browser()
    authorize = start_login(session, base)
    callback = session.get(authorize.headers["Location"], allow_redirects=False, timeout=10)
    session.get(callback.headers["Location"], allow_redirects=False, timeout=10)
    return session


def test_operator_status_follows_the_list_at_each_login(live_server, oauth, settings):
    """An id taken off OPERATOR_DISCORD_IDS loses staff at the next login; one put back gets it again."""
    oauth.set_oauth_user({"id": "5005", "username": "erin"}, guilds=[])
    settings.OPERATOR_DISCORD_IDS = [5005]
    me = log_in_with_discord(live_server.url).get(f"{live_server.url}/api/v1/auth/me", timeout=10).json()
    assert me["user"]["is_staff"] is True
    settings.OPERATOR_DISCORD_IDS = []
    me = log_in_with_discord(live_server.url).get(f"{live_server.url}/api/v1/auth/me", timeout=10).json()
    assert me["user"]["is_staff"] is False
    assert User.objects.get(discord_id=5005).is_staff is False
    settings.OPERATOR_DISCORD_IDS = [5005]
    log_in_with_discord(live_server.url)
    assert User.objects.get(discord_id=5005).is_staff is True


def test_a_superuser_linked_to_discord_stays_staff(live_server, oauth, settings):
    User.objects.create_superuser(username="root", password="root-pass-123", discord_id=5006)
    oauth.set_oauth_user({"id": "5006", "username": "root_d"}, guilds=[])
    settings.OPERATOR_DISCORD_IDS = []
    log_in_with_discord(live_server.url)
    root = User.objects.get(discord_id=5006)
    assert root.is_staff and root.is_superuser
