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


def test_back_and_forward_get_the_whole_page(client, guild, bob):
    # The search pushes its URL; htmx restores a history entry missing from its cache with HX-Request too.
    client.force_login(bob)
    partial = client.get(url(guild), {"q": "carol"}, **HTMX)
    assert partial.content.decode().lstrip().startswith('<div id="members">')
    page = client.get(url(guild), {"q": "carol"}, HTTP_HX_HISTORY_RESTORE_REQUEST="true", **HTMX)
    assert b"<html" in page.content
    assert "HX-Request" in partial["Vary"] and "HX-Request" in page["Vary"]


def test_search_by_name_display_name_or_discord_id(client, guild, alice, bob, carol):
    client.force_login(alice)

    def found(q: str, **extra: str) -> list[str]:
        response = client.get(url(guild), {"q": q}, **extra)
        return [m.user.username for m, _ in response.context["rows"]]

    assert found("car") == ["carol"]  # username
    User.objects.filter(pk=bob.pk).update(global_name="The Builder")
    assert found("builder") == ["bob"]  # Discord display name, any case
    assert found("1003") == ["carol"]  # Discord id
    assert found("") == ["alice", "bob", "carol"]
    assert found("nobody") == []
    assert found("car\x00") == ["carol"]  # a NUL byte is dropped, never a 500 on PostgreSQL
    assert "No member matches “nobody”." in client.get(url(guild), {"q": "nobody"}).content.decode()
    # With htmx, only the list comes back (the search box stays as typed).
    html = client.get(url(guild), {"q": "car"}, **HTMX).content.decode()
    assert html.lstrip().startswith('<div id="members">') and "Carol" in html and "Bob" not in html
    # A change made while searching answers with the same search.
    response = client.post(role_url(guild, carol), {"role": "ADMIN", "q": "car"}, **HTMX)
    assert [m.user.username for m, _ in response.context["rows"]] == ["carol"]


def test_roles_change_in_place(client, guild, alice, carol):
    client.force_login(alice)
    html = client.get(url(guild)).content.decode()
    form = html.split(f'action="{role_url(guild, carol)}"', 1)[1].split("</form>", 1)[0]
    # Picking another role posts at once, after a confirmation; without JavaScript a "Change" button posts it.
    assert 'hx-trigger="change, submit"' in form and 'hx-confirm="Change the role of Carol?"' in form
    assert "<noscript><button" in form and "Change</button></noscript>" in form


def test_no_remove_on_your_own_row_and_removing_is_quiet(client, guild, alice, bob, carol):
    client.force_login(alice)
    html = client.get(url(guild)).content.decode()
    assert remove_url(guild, alice) not in html
    assert remove_url(guild, bob) in html and remove_url(guild, carol) in html
    assert html.count('<button class="danger quiet small"') == 2


def test_members_added_by_id_are_marked_until_they_log_in(client, guild, alice):
    client.force_login(alice)
    client.post(url(guild), {"user": "424242", "role": "USER"})
    html = client.get(url(guild)).content.decode()
    added = Membership.objects.get(user__discord_id=424242)
    row = html.split(f'id="member-{added.pk}"', 1)[1].split("</tr>", 1)[0]
    assert "Discord user 424242 " in row and "(has not logged in yet)" in row and "discord-424242" not in row


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
