"""Container healthcheck: ``python -m config.healthcheck URL`` exits 0 when URL answers 200.

Standard library only (it runs every few seconds): no Django start-up. It sends the first of
DJANGO_ALLOWED_HOSTS as the Host, so the web app does not answer 400 to ``127.0.0.1`` in production, and
``X-Forwarded-Proto: https``, as the reverse proxy would.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def host_header() -> str | None:
    for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(","):
        host = host.strip().lstrip(".")
        if host and host != "*":
            return host
    return None


def check(url: str, timeout: float = 3.0) -> tuple[bool, str]:
    if not url.startswith(("http://127.0.0.1", "http://localhost")):
        return False, f"refusing to probe {url}: only this container's own ports"
    headers = {"X-Forwarded-Proto": "https"}
    host = host_header()
    if host:
        headers["Host"] = host
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (local URL checked above)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status == 200, f"{response.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{exc.code} {exc.read(300).decode(errors='replace')}"
    except OSError as exc:
        return False, str(exc)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m config.healthcheck http://127.0.0.1:8000/api/v1/health", file=sys.stderr)
        return 2
    healthy, detail = check(argv[0])
    print(detail)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
