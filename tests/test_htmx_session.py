"""An htmx request whose session expired is sent to the login page (``HX-Redirect``, with the page the user was on
as ``next``) instead of getting the login page pasted into the form; a CSRF refusal is marked for parley.js."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.test import Client
from django.urls import reverse

from audit.models import AuditLog
from tests.conftest import settings_post_data

HTMX = {"HTTP_HX_REQUEST": "true"}


def page_url(guild) -> str:
    return reverse("guilds:settings", args=[guild.discord_id])


def next_of(url: str) -> str:
    parts = urlsplit(url)
    assert parts.path == settings.LOGIN_URL
    return parse_qs(parts.query)["next"][0]


def test_an_expired_session_redirects_htmx_to_the_login_page(client, guild):
    current = f"http://testserver{page_url(guild)}?channel=5"
    response = client.post(
        page_url(guild), settings_post_data(guild, temperature="1"), HTTP_HX_CURRENT_URL=current, **HTMX
    )
    assert response.status_code == 200 and response.content == b""  # nothing for htmx to swap in
    assert "Location" not in response
    assert next_of(response["HX-Redirect"]) == f"{page_url(guild)}?channel=5"  # the page, not the form's URL
    assert not AuditLog.objects.exists()


def test_the_next_page_is_the_posted_url_when_the_browser_does_not_say(client, guild):
    override = reverse("guilds:override", args=[guild.discord_id])
    response = client.post(override, {}, **HTMX)
    assert next_of(response["HX-Redirect"]) == override


def test_the_next_page_never_leaves_the_site(client, guild):
    for current in ["https://evil.example//evil.example/x", "//evil.example/x", "javascript:alert(1)"]:
        response = client.post(page_url(guild), {}, HTTP_HX_CURRENT_URL=current, **HTMX)
        assert next_of(response["HX-Redirect"]) == page_url(guild), current


def test_a_request_without_htmx_keeps_the_plain_redirect(client, guild):
    response = client.post(page_url(guild), settings_post_data(guild, temperature="1"))
    assert response.status_code == 302
    assert next_of(response["Location"]) == page_url(guild)
    assert "HX-Redirect" not in response


def test_a_logged_in_htmx_request_is_left_alone(client, guild, alice):
    client.force_login(alice)
    response = client.get(reverse("guilds:override", args=[guild.discord_id]), **HTMX)
    assert response.status_code == 200 and "HX-Redirect" not in response
    # A redirect elsewhere than the login page stays a redirect (a form without htmx that saved).
    response = client.post(page_url(guild), settings_post_data(guild, temperature="1"))
    assert response.status_code == 302 and response["Location"] == page_url(guild)


def test_a_csrf_refusal_is_marked_for_htmx(guild, alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(page_url(guild), settings_post_data(guild, temperature="1"), **HTMX)
    assert response.status_code == 403 and response["X-Parley-Error"] == "csrf"
    assert not AuditLog.objects.exists()
    # The same refusal without htmx, and a 403 of the view itself, are not marked.
    assert "X-Parley-Error" not in client.post(page_url(guild), {})


def test_a_role_refusal_is_not_marked_as_csrf(client, guild, carol):
    client.force_login(carol)
    response = client.post(page_url(guild), settings_post_data(guild, temperature="1"), **HTMX)
    assert response.status_code == 403 and "X-Parley-Error" not in response
