from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

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
