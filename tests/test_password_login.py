"""Password login is for operators, and it is rate-limited: the admin's login page counts failures like allauth's.
Discord users have no password pages; the pages that send mail exist only with a mail server."""

from __future__ import annotations

import time
import uuid

import pytest
from django.core.cache import caches
from django.test import Client

from accounts.models import User

ADMIN_LOGIN = "/admin/login/"
ACCOUNT_LOGIN = "/accounts/login/"
TOO_MANY = "Too many failed login attempts"


def admin_login(client: Client, username: str, password: str):
    return client.post(ADMIN_LOGIN, {"username": username, "password": password, "next": "/admin/"})


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.fixture(autouse=True)
def _fresh_counts(monkeypatch):
    """The attempts are counted in the cache: each test counts from zero, also on a Redis shared between runs."""
    backend = caches["default"]
    monkeypatch.setattr(backend, "key_prefix", f"{backend.key_prefix}-{uuid.uuid4().hex}")


@pytest.fixture
def short_window(settings):
    """allauth's limits, with the per-username window shortened to a second."""
    settings.ACCOUNT_RATE_LIMITS = {"login_failed": "10/m/ip,5/1s/key"}


def test_admin_login_works_for_staff(client, staff):
    response = admin_login(client, "operator", "operator-pass-123")
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert logged_in(client)


def test_admin_login_refuses_the_right_password_after_five_failures(staff, short_window):
    client = Client(REMOTE_ADDR="10.0.0.1")
    for _ in range(5):
        response = admin_login(client, "operator", "wrong-password")
        assert response.status_code == 200 and TOO_MANY not in response.content.decode()
    response = admin_login(client, "operator", "operator-pass-123")
    assert response.status_code == 200 and TOO_MANY in response.content.decode()
    assert not logged_in(client)
    # Another address is refused too: the limit is on the username.
    response = admin_login(Client(REMOTE_ADDR="10.0.0.2"), "operator", "operator-pass-123")
    assert TOO_MANY in response.content.decode()

    time.sleep(1.1)  # the window passes
    fresh = Client(REMOTE_ADDR="10.0.0.3")
    assert admin_login(fresh, "operator", "operator-pass-123").status_code == 302
    assert logged_in(fresh)


def test_admin_and_allauth_logins_share_the_count(staff, short_window):
    client = Client(REMOTE_ADDR="10.0.1.1")
    for _ in range(5):
        client.post(ACCOUNT_LOGIN, {"login": "operator", "password": "wrong-password"})
    response = admin_login(client, "operator", "operator-pass-123")
    assert TOO_MANY in response.content.decode() and not logged_in(client)


def test_allauth_login_refuses_the_right_password_after_five_failures(staff, short_window):
    client = Client(REMOTE_ADDR="10.0.2.1")
    for _ in range(5):
        client.post(ACCOUNT_LOGIN, {"login": "operator", "password": "wrong-password"})
    response = client.post(ACCOUNT_LOGIN, {"login": "operator", "password": "operator-pass-123"})
    assert TOO_MANY in response.content.decode() and not logged_in(client)


def test_one_address_failing_for_many_usernames_is_limited(staff, settings):
    settings.ACCOUNT_RATE_LIMITS = {"login_failed": "3/m/ip,100/1s/key"}
    client = Client(REMOTE_ADDR="10.0.3.1")
    for username in ("a", "b", "c"):
        admin_login(client, username, "wrong-password")
    assert TOO_MANY in admin_login(client, "operator", "operator-pass-123").content.decode()
    assert admin_login(Client(REMOTE_ADDR="10.0.3.2"), "operator", "operator-pass-123").status_code == 302


@pytest.fixture
def carol_with_password(carol) -> User:
    """A Discord user who somehow has a password (before this fix, /accounts/password/set/ gave one)."""
    carol.set_password("carol-pass-123")
    carol.save()
    return carol


def test_password_login_refuses_discord_users(client, carol_with_password):
    response = client.post(ACCOUNT_LOGIN, {"login": "carol", "password": "carol-pass-123"})
    assert response.status_code == 200 and not logged_in(client)
    assert "not correct" in response.content.decode()
    response = admin_login(client, "carol", "carol-pass-123")
    assert response.status_code == 200 and not logged_in(client)


def test_password_login_works_for_operators(client, staff):
    response = client.post(ACCOUNT_LOGIN, {"login": "operator", "password": "operator-pass-123"})
    assert response.status_code == 302 and logged_in(client)


@pytest.mark.parametrize("url", ["/accounts/password/set/", "/accounts/password/change/"])
def test_password_pages_are_404_for_discord_users(client, carol, url):
    client.force_login(carol)
    assert client.get(url).status_code == 404
    assert client.post(url, {"password1": "x-new-pass-123", "password2": "x-new-pass-123"}).status_code == 404
    carol.refresh_from_db()
    assert not carol.has_usable_password()


def test_password_change_works_for_operators(client, staff):
    client.force_login(staff)
    assert client.get("/accounts/password/change/").status_code == 200


def test_password_pages_ask_anonymous_visitors_to_log_in(client, db):
    response = client.get("/accounts/password/change/")
    assert response.status_code == 302 and response["Location"].startswith(ACCOUNT_LOGIN)


MAIL_PAGES = [
    "/accounts/password/reset/",
    "/accounts/password/reset/done/",
    "/accounts/password/reset/key/done/",
    "/accounts/password/reset/key/1-abc-def/",
    "/accounts/email/",
    "/accounts/confirm-email/",
    "/accounts/confirm-email/some-key/",
]


@pytest.mark.parametrize("url", MAIL_PAGES)
def test_mail_pages_are_404_without_a_mail_server(client, staff, settings, url):
    settings.EMAIL_ENABLED = False
    assert client.get(url).status_code == 404
    assert client.post(url, {"email": "root@example.com"}).status_code == 404
    client.force_login(staff)
    assert client.get(url).status_code == 404


def test_password_reset_sends_mail_with_a_mail_server(client, superuser, settings, mailoutbox):
    settings.EMAIL_ENABLED = True
    assert client.get("/accounts/password/reset/").status_code == 200
    response = client.post("/accounts/password/reset/", {"email": "root@example.com"})
    assert response.status_code == 302
    assert [message.to for message in mailoutbox] == [["root@example.com"]]


def test_email_page_is_for_operators_only(client, carol, staff, settings):
    settings.EMAIL_ENABLED = True
    client.force_login(carol)
    assert client.get("/accounts/email/").status_code == 404
    client.force_login(staff)
    assert client.get("/accounts/email/").status_code == 200


def test_an_operator_taken_off_the_list_loses_password_login_at_once(client, db, settings):
    settings.OPERATOR_DISCORD_IDS = [4242]
    operator = User.objects.create_user(
        username="former", password="operator-pass-123", discord_id=4242, is_staff=True
    )
    assert operator.check_password("operator-pass-123")
    settings.OPERATOR_DISCORD_IDS = []
    operator.refresh_from_db()
    assert operator.is_staff, "is_staff is only recomputed at a Discord login..."
    assert not operator.check_password("operator-pass-123"), "...but the password stops working now"
    response = client.post("/admin/login/", {"username": "former", "password": "operator-pass-123"})
    assert "_auth_user_id" not in client.session and response.status_code == 200
