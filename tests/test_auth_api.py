"""/api/v1/auth/*: where the Discord login starts and who is logged in; logout is allauth's POST."""

from __future__ import annotations

from django.urls import reverse

from accounts.models import User
from guilds.models import Guild, Membership

ME = reverse("accounts:me")
LOGIN = reverse("accounts:discord_login")


def test_me_requires_login(client, db):
    response = client.get(ME)
    assert response.status_code == 401
    assert response.json() == {"error": "not_authenticated", "message": "Log in first.", "login_url": LOGIN}


def test_me_lists_memberships(client, guild, bob):
    other = Guild.objects.create_with_settings(discord_id=2**60, name="Another", is_active=False)
    Membership.objects.create(user=bob, guild=other, role=Membership.Role.USER)
    client.force_login(bob)
    body = client.get(ME).json()
    assert body["user"] == {
        "id": bob.pk,
        "discord_id": "1002",
        "username": "bob",
        "global_name": "Bob",
        "display_name": "Bob",
        "avatar_url": bob.avatar_url,
        "is_staff": False,
    }
    assert [(m["guild_id"], m["role"], m["bot_active"]) for m in body["memberships"]] == [
        (str(2**60), "USER", False),  # a string: JavaScript cannot hold 2**60 exactly
        (str(guild.discord_id), "ADMIN", True),
    ]


def test_discord_login_redirects_into_allauth(client, db):
    response = client.get(LOGIN, {"next": "/dashboard/"})
    assert response.status_code == 302
    assert response["Location"] == "/accounts/discord/login/?next=%2Fdashboard%2F"
    assert client.get(LOGIN, {"next": "https://evil.example/"})["Location"] == "/accounts/discord/login/"


def test_login_page_posts_and_works_without_discord_configured(client, db, settings):
    settings.SOCIALACCOUNT_PROVIDERS = {
        "discord": {**settings.SOCIALACCOUNT_PROVIDERS["discord"], "APPS": []}
    }
    assert "Discord login is not configured" in client.get("/accounts/login/").content.decode()
    settings.SOCIALACCOUNT_PROVIDERS = {
        "discord": {
            **settings.SOCIALACCOUNT_PROVIDERS["discord"],
            "APPS": [{"client_id": "1", "secret": "s"}],
        }
    }
    html = client.get("/accounts/login/").content.decode()
    assert '<form method="post" action="/accounts/discord/login/' in html and "Log in with Discord" in html
    # SOCIALACCOUNT_LOGIN_ON_GET is off: a GET only shows a page that asks for the POST.
    page = client.get("/accounts/discord/login/")
    assert page.status_code == 200 and '<form method="post">' in page.content.decode()


def test_password_login_for_operators(client, staff):
    response = client.post("/accounts/login/", {"login": "operator", "password": "operator-pass-123"})
    assert response.status_code == 302 and response["Location"] == "/dashboard/"
    assert client.get(ME).json()["user"]["is_staff"] is True


def test_no_password_signups(client, db):
    assert "Sign Up Closed" in client.get("/accounts/signup/").content.decode()
    client.post(
        "/accounts/signup/", {"username": "x", "password1": "Abcdefgh12345", "password2": "Abcdefgh12345"}
    )
    assert not User.objects.exists()


def test_logout_is_a_post(client, alice):
    client.force_login(alice)
    client.get("/accounts/logout/")  # shows a confirmation page, stays logged in
    assert client.get(ME).status_code == 200
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get(ME).status_code == 401
