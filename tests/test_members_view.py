"""/dashboard/guilds/<id>/members/: owners and admins add members, change roles and remove them, each audited."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import User
from audit.models import AuditLog
from guilds.models import Guild, Membership
from tests.conftest import auth_queries

HTMX = {"HTTP_HX_REQUEST": "true"}
Role = Membership.Role


def url(guild) -> str:
    return reverse("guilds:members", args=[guild.discord_id])


def role_url(guild, user) -> str:
    return reverse(
        "guilds:member_role", args=[guild.discord_id, Membership.objects.get(user=user, guild=guild).pk]
    )


def remove_url(guild, user) -> str:
    return reverse(
        "guilds:member_remove", args=[guild.discord_id, Membership.objects.get(user=user, guild=guild).pk]
    )


def role_of(user, guild) -> str | None:
    membership = Membership.objects.filter(user=user, guild=guild).first()
    return membership.role if membership else None


def test_it_works(client, guild, alice, bob, carol):
    client.force_login(alice)
    page = client.get(url(guild)).content.decode()
    assert "Alice" in page and "Bob" in page and "Carol" in page
    assert page.index("Alice") < page.index("Bob") < page.index("Carol")  # owners first

    assert client.post(url(guild), {"user": "424242", "role": "ADMIN"}).status_code == 302
    added = User.objects.get(discord_id=424242)
    assert role_of(added, guild) == "ADMIN"

    assert client.post(role_url(guild, carol), {"role": "ADMIN", "confirmed": "yes"}).status_code == 302
    assert role_of(carol, guild) == "ADMIN"

    assert client.post(remove_url(guild, bob), {"confirmed": "yes"}).status_code == 302
    assert role_of(bob, guild) is None

    entries = list(
        AuditLog.objects.order_by("id").values_list("action", "actor__username", "target", "changes")
    )
    assert entries == [
        ("member.add", "alice", "user:424242", {"role": [None, "ADMIN"]}),
        ("member.role_change", "alice", "user:1003", {"role": ["USER", "ADMIN"]}),
        ("member.remove", "alice", "user:1002", {"role": ["ADMIN", None]}),
    ]


def test_it_works_with_htmx(client, guild, bob, carol, dave):
    client.force_login(bob)
    response = client.post(url(guild), {"user": "dave", "role": "USER"}, **HTMX)  # a known username
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="members">') and "Member added." in html
    assert role_of(dave, guild) == "USER"
    response = client.post(role_url(guild, dave), {"role": "ADMIN"}, **HTMX)
    assert response.status_code == 200 and role_of(dave, guild) == "ADMIN"
    response = client.post(remove_url(guild, dave), **HTMX)
    assert response.status_code == 200 and role_of(dave, guild) is None


def test_changes_ask_for_confirmation_without_javascript(client, guild, alice, carol):
    client.force_login(alice)
    asking = client.post(role_url(guild, carol), {"role": "ADMIN"})
    assert asking.status_code == 200
    html = asking.content.decode()
    assert "Change the role of Carol?" in html and 'name="role" value="ADMIN"' in html
    assert role_of(carol, guild) == "USER"
    asking = client.post(remove_url(guild, carol))
    assert "Remove Carol" in asking.content.decode()
    assert role_of(carol, guild) == "USER"
    assert not AuditLog.objects.exists()


def test_it_checks_membership(client, guild, alice, carol, dave):
    client.force_login(dave)
    assert client.get(url(guild)).status_code == 404
    assert client.post(url(guild), {"user": "5", "role": "USER"}).status_code == 404
    assert client.post(role_url(guild, carol), {"role": "ADMIN", "confirmed": "yes"}).status_code == 404
    assert client.post(remove_url(guild, carol), {"confirmed": "yes"}).status_code == 404
    # A membership of another guild is not reachable through this guild's URL.
    other = Guild.objects.create_with_settings(discord_id=77, name="Other")
    Membership.objects.create(user=dave, guild=other, role=Role.OWNER)
    client.force_login(alice)
    foreign = Membership.objects.get(guild=other).pk
    assert client.post(reverse("guilds:member_remove", args=[guild.discord_id, foreign])).status_code == 404
    assert role_of(carol, guild) == "USER" and role_of(dave, other) == "OWNER"
    assert not AuditLog.objects.exists()


def test_it_requires_role(client, guild, alice, carol):
    client.force_login(carol)
    assert client.get(url(guild)).status_code == 403
    assert client.post(url(guild), {"user": "5", "role": "USER"}).status_code == 403
    assert client.post(role_url(guild, carol), {"role": "OWNER", "confirmed": "yes"}).status_code == 403
    assert client.post(remove_url(guild, alice), {"confirmed": "yes"}).status_code == 403
    assert role_of(carol, guild) == "USER" and role_of(alice, guild) == "OWNER"
    assert not AuditLog.objects.exists()


@pytest.mark.parametrize(
    ("actor", "action", "message"),
    [
        ("bob", lambda g, u: (url(g), {"user": "5", "role": "OWNER"}), "Select a valid choice"),
        ("bob", lambda g, u: (role_url(g, u["carol"]), {"role": "OWNER"}), "Select a valid choice"),
        ("bob", lambda g, u: (role_url(g, u["alice"]), {"role": "USER"}), "Admins cannot change an owner"),
        ("bob", lambda g, u: (remove_url(g, u["alice"]), {}), "Admins cannot remove an owner"),
        ("alice", lambda g, u: (remove_url(g, u["alice"]), {}), "You are the last owner"),
        ("alice", lambda g, u: (role_url(g, u["alice"]), {"role": "ADMIN"}), "You are the last owner"),
        ("alice", lambda g, u: (url(g), {"user": "carol", "role": "USER"}), "already a member"),
        (
            "alice",
            lambda g, u: (url(g), {"user": "nobody", "role": "USER"}),
            "No Parley user has that username",
        ),
        ("alice", lambda g, u: (url(g), {"user": "-5", "role": "USER"}), "No Parley user"),
    ],
)
def test_it_rejects_bad_input(client, guild, alice, bob, carol, actor, action, message):
    people = {"alice": alice, "bob": bob, "carol": carol}
    client.force_login(people[actor])
    target, payload = action(guild, people)
    response = client.post(target, payload, **HTMX)
    assert response.status_code == 422
    assert message in response.content.decode()
    assert [role_of(p, guild) for p in people.values()] == ["OWNER", "ADMIN", "USER"]
    assert not AuditLog.objects.exists()


def test_known_users_come_from_guilds_you_manage(client, guild, alice, db):
    other = Guild.objects.create_with_settings(discord_id=77, name="Other")
    Membership.objects.create(user=alice, guild=other, role=Role.OWNER)
    friend = User.objects.create_user(username="friend", discord_id=8888, global_name="Friend")
    Membership.objects.create(user=friend, guild=other, role=Role.USER)
    stranger = User.objects.create_user(username="stranger", discord_id=9999)
    client.force_login(alice)
    html = client.get(url(guild)).content.decode()
    assert '<option value="8888">Friend</option>' in html
    assert str(stranger.discord_id) not in html


def test_query_count_is_constant(client, guild, alice, django_assert_num_queries):
    client.force_login(alice)
    client.get(url(guild))
    with django_assert_num_queries(auth_queries() + 3):  # membership+guild, members+users, known users
        assert client.get(url(guild)).status_code == 200
    users = User.objects.bulk_create(User(username=f"u{i}", discord_id=5000 + i) for i in range(30))
    Membership.objects.bulk_create(Membership(user=u, guild=guild) for u in users)
    with django_assert_num_queries(auth_queries() + 3):
        assert client.get(url(guild)).status_code == 200
