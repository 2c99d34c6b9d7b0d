"""What every dashboard view shares: who may see which guild with which role, a service's errors on a form, the
no-JavaScript confirmation step, a page or its htmx partial, and JSON errors for the API views."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.forms import BaseForm
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django_htmx.middleware import HtmxDetails

from accounts.models import User
from guilds.models import Guild, Membership

INVALID = 422  # a form with errors; base.html tells htmx to swap it in like a 200


class HtmxHttpRequest(HttpRequest):
    """The request dashboard views receive: django-htmx's middleware adds ``htmx`` (typing only)."""

    htmx: HtmxDetails


def get_guild_for(
    request: HttpRequest, guild_id: int, min_role: str = Membership.Role.USER
) -> tuple[Guild, Membership]:
    """The guild with Discord id ``guild_id`` and the user's membership, in one query (settings included).

    A non-member gets 404, so a guild's existence is never revealed; a member below ``min_role`` gets 403.
    """
    return guild_for_user(request.user, guild_id, min_role)


def guild_for_user(
    user: Any, guild_id: int, min_role: str = Membership.Role.USER
) -> tuple[Guild, Membership]:
    """``get_guild_for`` for a user without a request: the WebSocket consumers check the same rule."""
    if not isinstance(user, User):
        raise Http404("No such guild")
    membership = (
        Membership.objects.select_related("guild", "guild__settings", "user")
        .filter(user=user, guild__discord_id=guild_id)
        .first()
    )
    guild = membership.guild if membership else None
    if guild is None and user.is_staff:
        guild = Guild.objects.select_related("settings").filter(discord_id=guild_id).first()
    if guild is None:
        raise Http404("No such guild")
    membership = Membership.resolve(user, guild, membership)
    if membership is None or not membership.has_role(min_role):
        raise PermissionDenied("Your role in this server does not allow this.")
    return guild, membership


def user_of(request: HttpRequest) -> User:
    """The logged-in user of a view behind ``login_required``."""
    if not isinstance(request.user, User):
        raise PermissionDenied("Log in first.")
    return request.user


def who(request: HttpRequest) -> dict[str, Any]:
    """``actor`` and ``ip`` for a service call: who the audit row names, and from where."""
    return {"actor": user_of(request), "ip": request_ip(request)}


def request_ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


@contextmanager
def errors_on(form: BaseForm) -> Iterator[None]:
    """Run a service call; its ValidationError lands on ``form`` (field errors by name) and nothing was changed.

    with errors_on(form):
        services.settings_update(...)
    if form.errors: ...
    """
    try:
        yield
    except ValidationError as exc:
        if hasattr(exc, "error_dict") and not set(exc.error_dict) <= {*form.fields, NON_FIELD_ERRORS}:
            exc = ValidationError(exc.messages)  # errors about fields this form does not show
        form.add_error(None, exc)


def error_text(form: BaseForm) -> str:
    return " ".join(str(error) for errors in form.errors.values() for error in errors)


def confirmation(request: HtmxHttpRequest, question: str, context: dict[str, Any]) -> HttpResponse | None:
    """Without JavaScript (no hx-confirm), a destructive POST first shows a page that asks, then re-posts."""
    if request.htmx or request.POST.get("confirmed") == "yes":
        return None
    fields = [(k, v) for k, v in request.POST.items() if k not in {"csrfmiddlewaretoken", "confirmed"}]
    context = {**context, "question": question, "fields": fields, "action": request.path}
    return render(request, "guilds/confirm.html", context)


def render_page(
    request: HtmxHttpRequest, template: str, partial: str, context: dict[str, Any], *, status: int = 200
) -> HttpResponse:
    """``template``, or only its ``partial`` for an htmx request. Never the partial for a history restore: on a
    cache miss after back/forward htmx asks with HX-Request too, and puts the answer in as the whole page."""
    fragment = request.htmx and not request.htmx.history_restore_request
    response = render(request, f"{template}#{partial}" if fragment else template, context, status=status)
    patch_vary_headers(response, ["HX-Request"])  # so the browser's cache never gives the partial as the page
    return response


def json_error(status: int, code: str, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": code, "message": message, **extra}, status=status)


def json_api(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """For JSON views: 401 when logged out, and ``get_guild_for``'s 404/403 as JSON instead of HTML pages."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return json_error(401, "not_authenticated", "Log in first.")
        try:
            return view(request, *args, **kwargs)
        except Http404:
            return json_error(404, "not_found", "Not found.")
        except PermissionDenied as exc:
            return json_error(403, "forbidden", str(exc) or "Your role does not allow this.")

    return wrapper
