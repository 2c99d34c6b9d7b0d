from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config.probes import cache_probe, database_probe

_probes = ThreadPoolExecutor(max_workers=2, thread_name_prefix="health")


def landing(request: HttpRequest) -> HttpResponse:
    return render(request, "landing.html")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A refused form post (expired page, cookies off): Django's own view renders without the request, so the
    page would show a logged-in user the "Log in" link and set no new token for the retry."""
    return render(request, "403_csrf.html", {"reason": reason if settings.DEBUG else ""}, status=403)


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """Real checks of the database and the cache, side by side so that both down still answers within a second;
    503 names the part that failed. (The cache probe has a client of its own, so it may run in another thread.)"""
    cache_check = _probes.submit(cache_probe)
    parts = {"database": database_probe().state, "cache": cache_check.result().state}
    failing = [name for name, state in parts.items() if state != "ok"]
    body: dict[str, object] = {
        "status": "error" if failing else "ok",
        **parts,
        "version": settings.PARLEY_VERSION,
    }
    if failing:
        body["failing"] = failing
    return JsonResponse(body, status=503 if failing else 200)
