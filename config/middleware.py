from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from urllib.parse import SplitResult, parse_qs, urlencode, urlsplit

from django.conf import settings
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.http import HttpResponseClientRedirect

from config.logging import request_id_var

# Accept a proxy's id only when it looks like one, so a client cannot inject text into our logs.
_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Container healthchecks hit this every few seconds: logged at DEBUG so they do not drown the access log.
_QUIET_PATHS = frozenset({"/api/v1/health"})

access_logger = logging.getLogger("parley.access")


class RequestIdMiddleware:
    """Gives each request an id (the proxy's ``X-Request-ID`` or a new one), puts it on every log line written
    while the request runs, returns it in the response, and writes one access log line per request.

    The access line has the path but never the query string: OAuth callbacks carry their code and state there.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _VALID_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            access_logger.log(
                logging.DEBUG if request.path in _QUIET_PATHS else logging.INFO,
                "%s %s %s %.0fms",
                request.method,
                request.path,
                response.status_code,
                (time.perf_counter() - started) * 1000,
                extra={"status": response.status_code, "method": request.method, "path": request.path},
            )
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = request_id
        return response


class HtmxSessionMiddleware:
    """Two answers htmx would otherwise get wrong: it follows a redirect inside the XHR and pastes the login page
    into the form, and it shows nothing for a 403.

    - A redirect to the login page (the session expired) of an htmx request becomes ``HX-Redirect`` to the login
      page, whose ``next`` is the page the user is on (``HX-Current-URL``), not the URL the form posted to.
    - A CSRF rejection of an htmx request is marked ``X-Parley-Error: csrf``, so parley.js can tell the user to
      reload the page (their token belongs to a session that changed) rather than that they may not do this.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.headers.get("HX-Request") != "true":
            return response
        if response.status_code in (301, 302, 303, 307, 308):
            login = resolve_url(settings.LOGIN_URL)
            location = urlsplit(response["Location"])
            if location.path == login:
                return HttpResponseClientRedirect(
                    f"{login}?{urlencode({'next': _next_url(request, location)})}"
                )
        elif response.status_code == 403 and _csrf_rejected(request):
            response["X-Parley-Error"] = "csrf"
        return response


def _next_url(request: HttpRequest, login_redirect: SplitResult) -> str:
    """The page the user is on, or the ``next`` of the original redirect when the browser did not say."""
    current = urlsplit(request.headers.get("HX-Current-URL", ""))
    page = current.path + (f"?{current.query}" if current.query else "")
    same_site = current.scheme in ("", "http", "https") and current.netloc in ("", request.get_host())
    if same_site and page.startswith("/") and url_has_allowed_host_and_scheme(page, {request.get_host()}):
        return page
    return parse_qs(login_redirect.query).get(REDIRECT_FIELD_NAME, ["/"])[0]


def _csrf_rejected(request: HttpRequest) -> bool:
    # CsrfViewMiddleware marks every request it lets through (``_accept``); an unsafe request without the mark was
    # rejected by it, unless the view is exempt (and then its 403 is its own).
    if request.method in ("GET", "HEAD", "OPTIONS", "TRACE") or getattr(
        request, "csrf_processing_done", False
    ):
        return False
    match = request.resolver_match
    return not (match and getattr(match.func, "csrf_exempt", False))
