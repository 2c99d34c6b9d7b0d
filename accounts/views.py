"""The auth API: where a client starts the Discord login, and who is logged in; and the guards on allauth's
password and email pages (``accounts/allauth_urls.py``)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from accounts.models import User
from guilds.dashboard import json_error
from guilds.models import Membership


@require_GET
def discord_login(request: HttpRequest) -> HttpResponse:
    """Into allauth's flow: its page asks for a POST (SOCIALACCOUNT_LOGIN_ON_GET is off) before leaving for
    Discord, so a third-party page cannot start a login by linking here."""
    url = reverse("discord_login")
    next_url = request.GET.get("next", "")
    if next_url and url_has_allowed_host_and_scheme(next_url, {request.get_host()}, request.is_secure()):
        url += "?" + urlencode({"next": next_url})
    return HttpResponseRedirect(url)


@never_cache
@require_GET
def me(request: HttpRequest) -> JsonResponse:
    user = request.user
    if not isinstance(user, User):
        return json_error(
            401, "not_authenticated", "Log in first.", login_url=reverse("accounts:discord_login")
        )
    memberships = Membership.objects.filter(user=user).select_related("guild").order_by("guild__name")
    return JsonResponse(
        {
            "user": {
                "id": user.pk,
                "discord_id": str(user.discord_id) if user.discord_id else None,
                "username": user.username,
                "global_name": user.global_name,
                "display_name": user.display_name,
                "avatar_url": user.avatar_url,
                "is_staff": user.is_staff,
            },
            # Discord ids are strings: they exceed JavaScript's safe integers.
            "memberships": [
                {
                    "guild_id": str(m.guild.discord_id),
                    "guild_name": m.guild.name,
                    "icon_url": m.guild.icon_url,
                    "role": m.role,
                    "bot_active": m.guild.is_active,
                }
                for m in memberships
            ],
        }
    )


View = Callable[..., HttpResponse]


def operators_only(view: View) -> View:
    """Password pages are for operators: a logged-in Discord user gets 404 (they log in with Discord only).
    Anonymous visitors go on to allauth's view, which asks them to log in where it needs to."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated and not request.user.is_staff:
            raise Http404("Parley logs you in with Discord: there is no password to manage.")
        return view(request, *args, **kwargs)

    return guarded


def email_required(view: View) -> View:
    """Pages that send mail answer 404 until a mail server is configured (EMAIL_HOST), rather than 500 on send."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.EMAIL_ENABLED:
            raise Http404("Email is not configured (EMAIL_HOST).")
        return view(request, *args, **kwargs)

    return guarded
