from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def parley(request: HttpRequest) -> dict[str, Any]:
    return {"PARLEY_VERSION": settings.PARLEY_VERSION}
