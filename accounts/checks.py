"""``parley_doctor`` checks of the dashboard's address and Discord login (registered in ``AccountsConfig.ready``)."""

from __future__ import annotations

from django.conf import settings
from django.core import checks
from django.core.checks import CheckMessage
from django.http.request import validate_host
from django.urls import reverse

from config.checks import is_production, site


def check_discord_login() -> list[CheckMessage]:
    topic = "Discord login"
    found: list[CheckMessage] = []
    client_id, secret = settings.DISCORD_CLIENT_ID, settings.DISCORD_CLIENT_SECRET
    if not client_id or not secret:
        missing = " and ".join(
            name
            for name, value in (("DISCORD_CLIENT_ID", client_id), ("DISCORD_CLIENT_SECRET", secret))
            if not value
        )
        found.append(
            checks.Error(
                f"{missing} not set: nobody can log in to the dashboard with Discord.",
                hint="Developer Portal > your application > OAuth2: copy the Client ID and reset the Client Secret.",
                obj=topic,
                id="parley.E011",
            )
        )
    elif not client_id.isdigit():
        found.append(
            checks.Warning(
                "DISCORD_CLIENT_ID is not a number: it should be the application id.",
                hint="Copy the Client ID from Developer Portal > OAuth2 (also the application id).",
                obj=topic,
                id="parley.W012",
            )
        )
    else:
        found.append(checks.Debug("client id and secret set", obj=topic))
    found.append(
        checks.Info(
            f"redirect URL: {settings.SITE_URL}{reverse('discord_callback')}",
            hint="Add exactly this URL under Developer Portal > OAuth2 > Redirects.",
            obj=topic,
            id="parley.I013",
        )
    )
    return found


def check_site_url() -> list[CheckMessage]:
    topic = "SITE_URL"
    scheme, host, origin = site()
    if scheme not in {"http", "https"} or not host:
        return [
            checks.Error(
                f"SITE_URL={settings.SITE_URL!r} is not an http(s) URL.",
                hint="Set SITE_URL to the dashboard's public address, e.g. https://parley.example.com.",
                obj=topic,
                id="parley.E021",
            )
        ]
    found: list[CheckMessage] = []
    if not validate_host(host, settings.ALLOWED_HOSTS):
        found.append(
            checks.Error(
                f"{host} (from SITE_URL) is not in DJANGO_ALLOWED_HOSTS: every page, and Discord's redirect "
                "back after login, answers 400.",
                hint=f"Add {host} to DJANGO_ALLOWED_HOSTS.",
                obj=topic,
                id="parley.E022",
            )
        )
    if scheme == "https" and origin not in settings.CSRF_TRUSTED_ORIGINS:
        found.append(
            checks.Warning(
                f"{origin} is not in CSRF_TRUSTED_ORIGINS: behind a proxy that rewrites the Host or the scheme, "
                "forms answer 403.",
                hint=f"Set CSRF_TRUSTED_ORIGINS={origin}.",
                obj=topic,
                id="parley.W023",
            )
        )
    if is_production() and scheme != "https":
        level, id_ = (
            (checks.ERROR, "parley.E024") if settings.SECURE_HTTPS else (checks.WARNING, "parley.W025")
        )
        found.append(
            CheckMessage(
                level,
                f"SITE_URL is {scheme}:// on a public host: Discord accepts plain-http redirect URLs only for "
                "localhost, and cookies travel unencrypted.",
                hint="Serve the dashboard over HTTPS and set SITE_URL=https://... with DJANGO_SECURE=true.",
                obj=topic,
                id=id_,
            )
        )
    return found or [checks.Debug(f"{origin} matches DJANGO_ALLOWED_HOSTS", obj=topic)]
