"""403, 404, 500 and a refused CSRF token answer with a page inside Parley's layout that says why and where to go,
with DEBUG off as in production. Also the layout around every page: the operator's status link, the favicon,
and compressed HTML."""

from __future__ import annotations

import gzip

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path, reverse

from config.urls import urlpatterns as parley_urlpatterns
from tests.conftest import settings_post_data


def broken_view(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug")


# This module is also the URLconf of the 500 test: Parley's URLs plus one that raises.
urlpatterns = [path("broken/", broken_view), *parley_urlpatterns]


@pytest.fixture(autouse=True)
def _production(settings):
    settings.DEBUG = False


def assert_in_layout(response, status: int, *texts: str) -> str:
    assert response.status_code == status
    html = response.content.decode()
    assert '<header class="topbar">' in html and '<main id="content"' in html, "inside the app layout"
    for text in texts:
        assert text in html
    return html


def test_a_missing_server_is_a_404_page_with_a_way_back(client, guild, alice):
    client.force_login(alice)
    response = client.get(reverse("guilds:settings", args=[999]))
    assert_in_layout(
        response, 404, "Page not found", f'href="{reverse("guilds:list")}"', "Back to your servers"
    )


def test_an_unknown_address_offers_a_login_to_visitors(client, db):
    response = client.get("/no/such/page/")
    assert_in_layout(response, 404, "Page not found", f"{reverse('account_login')}?next=/no/such/page/")


def test_a_user_posting_settings_gets_a_403_page_saying_why(client, guild, carol):
    client.force_login(carol)
    url = reverse("guilds:settings", args=[guild.discord_id])
    response = client.post(url, settings_post_data(guild, system_prompt="Mine now"))
    assert_in_layout(response, 403, "Your role does not allow this", "Back to your servers", "Ask an")


def test_a_post_without_csrf_token_gets_the_expired_form_page(guild, alice):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    url = reverse("guilds:settings", args=[guild.discord_id])
    response = browser.post(url, settings_post_data(guild, system_prompt="No token"))
    assert_in_layout(response, 403, "This form has expired", "Nothing was changed", "Back to your servers")
    assert "Log out" in response.content.decode(), "rendered with the request: the user is still logged in"
    assert "csrftoken" in response.cookies, "a fresh token for the retry"


def test_a_server_error_is_a_500_page_that_needs_no_request(settings, alice):
    settings.ROOT_URLCONF = __name__
    client = Client(raise_request_exception=False)
    client.force_login(alice)
    response = client.get("/broken/")
    html = assert_in_layout(response, 500, "Something went wrong on our side", "Back to your servers")
    assert "a bug" not in html and "RuntimeError" not in html


# --- The layout around every page -----------------------------------------------------------------------------


def test_operators_get_a_status_link_in_the_top_bar(client, staff, alice):
    status = f'href="{reverse("botcore:status")}"'
    client.force_login(staff)
    assert status in client.get(reverse("guilds:list")).content.decode()
    client.force_login(alice)
    assert status not in client.get(reverse("guilds:list")).content.decode()


def test_every_page_has_a_favicon_a_skip_link_and_a_toast_region(client, db):
    html = client.get("/").content.decode()
    assert '<link rel="icon" href="/static/favicon.svg"' in html
    assert '<a class="skip-link" href="#content">Skip to content</a>' in html
    assert '<div id="toasts" class="toasts" role="status" aria-live="polite"></div>' in html


def test_html_is_compressed_for_browsers_that_accept_gzip(client, guild, alice):
    client.force_login(alice)
    url = reverse("guilds:settings", args=[guild.discord_id])
    response = client.get(url, HTTP_ACCEPT_ENCODING="gzip")
    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in response["Vary"]
    assert b"<h1>Settings</h1>" in gzip.decompress(response.content)
    plain = client.get(url)
    assert not plain.has_header("Content-Encoding")
