"""/dashboard/: your guilds with role and bot status, plus "Add Parley" for guilds you manage without the bot."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from django.urls import reverse

from accounts import discord_oauth
from accounts.models import User
from guilds.models import Guild, Membership
from tests.conftest import auth_queries

URL = reverse("guilds:list")


def oauth_guild(guild_id: int, name: str, *, owner: bool = False, permissions: int = 0) -> dict[str, object]:
    return {"id": str(guild_id), "name": name, "icon": None, "owner": owner, "permissions": str(permissions)}


def test_it_lists_memberships(client, guild, carol):
    Guild.objects.create_with_settings(discord_id=5, name="Not mine")
    left = Guild.objects.create_with_settings(discord_id=6, name="Bot left", is_active=False)
    Membership.objects.create(user=carol, guild=left, role=Membership.Role.ADMIN)
    client.force_login(carol)
    html = client.get(URL).content.decode()
    assert "Parley Test Server" in html and "Bot left" in html and "Not mine" not in html
    assert "bot active" in html and "bot inactive" in html
    assert reverse("guilds:settings", args=[guild.discord_id]) in html


def test_it_offers_invites_for_managed_guilds_without_the_bot(client, guild, alice, settings):
    settings.DISCORD_CLIENT_ID = "123456"
    discord_oauth.remember_guilds(
        alice.pk,
        [
            oauth_guild(guild.discord_id, "Parley Test Server", owner=True),  # the bot is there
            oauth_guild(901, "My own server", owner=True),
            oauth_guild(902, "I manage this", permissions=0x20),
            oauth_guild(903, "I only chat here", permissions=0x400),
        ],
    )
    client.force_login(alice)
    response = client.get(URL)
    invites = {g["name"]: g["invite_url"] for g in response.context["invites"]}
    assert set(invites) == {"My own server", "I manage this"}
    link = urlsplit(invites["My own server"])
    query = parse_qs(link.query)
    assert (link.scheme, link.netloc, link.path) == ("https", "discord.com", "/oauth2/authorize")
    assert query["client_id"] == ["123456"] and query["guild_id"] == ["901"]
    assert query["scope"] == ["bot applications.commands"] and int(query["permissions"][0]) & 0x800
    assert "Add Parley" in response.content.decode()


def test_managed_guilds_with_the_bot_but_no_role_are_listed(client, guild, dave):
    discord_oauth.remember_guilds(
        dave.pk, [oauth_guild(guild.discord_id, "Parley Test Server", permissions=0x8)]
    )
    client.force_login(dave)
    response = client.get(URL)
    assert [g["name"] for g in response.context["no_role"]] == ["Parley Test Server"]
    assert response.context["invites"] == []


def test_staff_see_every_guild(client, guild, staff):
    Guild.objects.create_with_settings(discord_id=5, name="Elsewhere")
    client.force_login(staff)
    html = client.get(URL).content.decode()
    assert "Elsewhere" in html and "Parley Test Server" in html


def test_anonymous_go_to_login(client, db):
    response = client.get(URL)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_query_count_is_constant(client, guild, alice, django_assert_num_queries):
    discord_oauth.remember_guilds(alice.pk, [oauth_guild(901, "Mine", owner=True)])
    client.force_login(alice)
    client.get(URL)
    # memberships+guilds, the bot's presence in the OAuth guilds
    with django_assert_num_queries(auth_queries() + 2):
        assert client.get(URL).status_code == 200
    for i in range(30):
        other = Guild.objects.create_with_settings(discord_id=1000 + i, name=f"Guild {i}")
        Membership.objects.create(user=alice, guild=other, role=Membership.Role.USER)
    with django_assert_num_queries(auth_queries() + 2):
        assert client.get(URL).status_code == 200


def test_guild_list_is_read_with_the_stored_token_and_cached(client, guild, db, monkeypatch):
    from allauth.socialaccount.models import SocialAccount, SocialToken

    user = User.objects.create_user(username="eve", discord_id=4444)
    account = SocialAccount.objects.create(user=user, provider="discord", uid="4444")
    SocialToken.objects.create(account=account, token="stored-token")
    calls = []
    monkeypatch.setattr(discord_oauth, "fetch_guilds", lambda token: calls.append(token) or [])
    client.force_login(user)
    client.get(URL)
    client.get(URL)
    assert calls == ["stored-token"]
