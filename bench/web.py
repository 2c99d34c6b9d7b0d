"""The web side of the benchmarks: gunicorn with uvicorn workers, the ``wrk`` load generator, and the fixture."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from bench.common import REDIS_URL, Workdir, children, proc_status
from tests import support

WORKERS = 2

# wrk's Lua hooks: optional rotation over several paths, and a JSON summary with the percentiles we report.
WRK_SCRIPT = r"""
local paths = {}
local n = 0
init = function(args)
  for _, p in ipairs(args) do paths[#paths + 1] = p end
end
request = function()
  if #paths == 0 then return wrk.format(nil) end
  n = n + 1
  return wrk.format("GET", paths[(n % #paths) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d, "timeouts": %d, ' ..
    '"p50_us": %d, "p95_us": %d, "p99_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.mean))
end
"""


def ensure_wrk() -> str | None:
    """Debian's wrk: installed with apt-get when missing and we are root (as ``make browser`` does for chromium)."""
    found = shutil.which("wrk")
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    print("  installing wrk with apt-get (Debian's package)...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, capture_output=True, timeout=300)
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=300)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, capture_output=True, timeout=300)
    return shutil.which("wrk")


def wrk(
    url: str,
    *,
    connections: int,
    seconds: float,
    workdir: Workdir,
    cookie: str = "",
    paths: Sequence[str] = (),
) -> dict[str, Any]:
    """One wrk run; returns requests/s, p50/p95/p99 in ms and the error counts."""
    script = workdir.path / "wrk.lua"
    if not script.exists():
        script.write_text(WRK_SCRIPT)
    args = [
        "wrk",
        f"-t{min(2, connections)}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
    ]
    if cookie:
        args += ["-H", f"Cookie: {cookie}"]
    args += [url, "--", *paths]
    result = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in result.stdout.splitlines() if x.startswith("WRK ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed:\n{result.stdout}\n{result.stderr}")
    data = json.loads(line[4:])
    secs = data["duration_us"] / 1e6
    return {
        "rps": data["requests"] / secs if secs else 0.0,
        "requests": data["requests"],
        "p50": data["p50_us"] / 1000,
        "p95": data["p95_us"] / 1000,
        "p99": data["p99_us"] / 1000,
        "errors": data["status_errors"] + data["socket_errors"] + data["timeouts"],
    }


class Gunicorn(support.Gunicorn):
    """``gunicorn config.asgi:application -k uvicorn_worker.UvicornWorker -w 2``, as the web service runs."""

    ready_timeout = 60

    def __init__(self, env: dict[str, str], workdir: Workdir, workers: int = WORKERS) -> None:
        self.n_workers = workers
        options = ["config.asgi:application", "-k", "uvicorn_worker.UvicornWorker", "-w", str(workers)]
        super().__init__([*options, "-c", "bench/gunicorn_conf.py"], dict(env), workdir.path)
        self.report_dir = workdir.path / f"workers-{self.port}"
        self.report_dir.mkdir()
        self.env["BENCH_WORKER_REPORT_DIR"] = str(self.report_dir)

    def up(self) -> bool:
        return super().up() and len(self.workers()) == self.n_workers

    def workers(self) -> list[int]:
        return children(self.pid) if self.alive() else []

    def worker_memory(self) -> list[dict[str, int]]:
        return [{"pid": pid, **proc_status(pid)} for pid in self.workers()]

    def worker_reports(self) -> list[dict[str, Any]]:
        """What each worker wrote as it exited (after ``stop``)."""
        deadline = time.monotonic() + 5
        while (
            time.monotonic() < deadline and len(list(self.report_dir.glob("worker-*.json"))) < self.n_workers
        ):
            time.sleep(0.1)
        return [json.loads(p.read_text()) for p in sorted(self.report_dir.glob("worker-*.json"))]


def web_env(workdir: Workdir, db_env: dict[str, str]) -> dict[str, str]:
    """PostgreSQL + Redis, production switches (DEBUG off), a cache prefix of our own to clean up afterwards."""
    return workdir.env(
        **db_env,
        REDIS_URL=REDIS_URL,
        CACHE_KEY_PREFIX=f"parley-bench-{os.getpid()}",
        DJANGO_DEBUG="false",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost,testserver",
    )


def redis_cleanup(prefix: str) -> None:
    support.redis_delete_prefix(REDIS_URL, prefix)


def session_cookie(session: dict[str, str]) -> str:
    return f"{session['name']}={session['value']}"


def playground_post(url: str, cookie: str, message: str) -> tuple[int, str]:
    """The playground form, as a browser without JavaScript sends it: GET for the CSRF token, then POST."""
    headers = {"Cookie": cookie, "Host": "127.0.0.1"}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as page:
        body = page.read().decode()
        set_cookie = page.headers.get_all("Set-Cookie") or []
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', body)
    csrf = next((c.split(";")[0] for c in set_cookie if c.startswith("csrftoken=")), "")
    if token is None or not csrf:
        raise RuntimeError("the playground page has no CSRF token")
    form = {"csrfmiddlewaretoken": token.group(1), "message": message, "model": "openai/gpt-4o-mini"}
    request = urllib.request.Request(
        url,
        data=urllib.parse.urlencode(form).encode(),
        headers={**headers, "Cookie": f"{cookie}; {csrf}", "Referer": url},
    )
    with urllib.request.urlopen(request, timeout=180) as response:
        return response.status, html.unescape(response.read().decode())
