from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)


def landing(request: HttpRequest) -> HttpResponse:
    return render(request, "landing.html")


def _check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        logger.warning("health: database check failed: %s", type(exc).__name__)
        return "error"
    return "ok"


def _check_cache() -> str:
    key = f"health:{uuid.uuid4().hex}"
    try:
        cache.set(key, "1", timeout=5)
        ok = cache.get(key) == "1"
        cache.delete(key)
    except Exception as exc:
        logger.warning("health: cache check failed: %s", type(exc).__name__)
        return "error"
    return "ok" if ok else "error"


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """Real checks of the database and the cache; 503 names the part that failed."""
    parts = {"database": _check_database(), "cache": _check_cache()}
    failing = [name for name, state in parts.items() if state != "ok"]
    body: dict[str, object] = {
        "status": "error" if failing else "ok",
        **parts,
        "version": settings.PARLEY_VERSION,
    }
    if failing:
        body["failing"] = failing
    return JsonResponse(body, status=503 if failing else 200)
