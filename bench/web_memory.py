"""Web worker memory: RSS after 10,000 requests across the dashboard's pages, and proof that litellm never loads.

1. In-process: a fresh interpreter (``bench.tasks web_memory``) sets Django up on PostgreSQL + Redis and sends
   REQUESTS GETs with django.test.Client, round-robin over the pages, logged in as a guild owner; it prints its
   RSS along the way and the litellm modules in ``sys.modules`` at the end (the whole request path, no server).
2. A real server: gunicorn with 2 uvicorn workers under wrk (the same page rotation) for GUNICORN_SECONDS; each
   worker's RSS from /proc before and after. Then playground calls through a provider (the local fake OpenAI
   server), the one page that needs litellm, until both workers have answered one; and the litellm modules each
   worker has imported, as it reports them itself (bench/gunicorn_conf.py). The calls run in each worker's child
   process (llm/runner.py), so the answer must arrive while the workers' module lists stay free of litellm.
The baseline is each process's own RSS once it has served every page once: what grows after that is the cost of
serving many requests.
"""

from __future__ import annotations

import time

from bench.common import Workdir, children, database, django_task, postgres_available, redis_available
from bench.report import Goal, Report, cli, fmt, table
from bench.web import Gunicorn, ensure_wrk, playground_post, redis_cleanup, session_cookie, web_env, wrk
from tests.fakes.llm_server import FakeLLM

PROVIDER_ANSWER = "answered by the provider"

REQUESTS, QUICK_REQUESTS = 10_000, 500
GUNICORN_SECONDS, QUICK_GUNICORN_SECONDS = 20.0, 5.0


def pages(busy: int) -> list[str]:
    guild = f"/dashboard/guilds/{busy}"
    return [
        "/",
        "/api/v1/health",
        "/dashboard/",
        f"{guild}/settings/",
        f"{guild}/members/",
        f"{guild}/audit/",
        f"{guild}/usage/",
        f"{guild}/playground/",
    ]


def run(quick: bool) -> Report:
    if not postgres_available() or not redis_available():
        return Report(
            "web_memory",
            "5. Web worker memory",
            notes=["Skipped: PostgreSQL and Redis are both needed."],
            goals=[Goal("litellm imported by the web process", "", "", "", "never", None)],
        )
    n = QUICK_REQUESTS if quick else REQUESTS
    with Workdir("web-memory") as workdir, database("postgres", workdir) as db:
        env = web_env(workdir, db.env)
        try:
            fx = django_task(env, "dashboard_fixture")
            paths = pages(fx["busy"])
            inproc = django_task(
                env, "web_memory", paths=paths, requests=n, username="bench-owner", timeout=1800
            )
            served = [p for p, status in inproc["statuses"].items() if status == 200]
            playground = f"/dashboard/guilds/{fx['busy']}/playground/"
            server = _gunicorn(env, workdir, served, session_cookie(fx["owner"]), quick, playground)
        finally:
            redis_cleanup(env["CACHE_KEY_PREFIX"])
    return report(inproc, server, n)


def _gunicorn(
    env: dict[str, str], workdir: Workdir, paths: list[str], cookie: str, quick: bool, playground: str
) -> dict:
    if not ensure_wrk():
        return {"skipped": "wrk is not installed"}
    with FakeLLM() as fake:
        fake.reply_with(PROVIDER_ANSWER)
        env = {**env, "OPENAI_API_KEY": "sk-bench", "OPENAI_API_BASE": fake.url}
        return _serve(env, workdir, paths, cookie, quick, playground, fake)


def _serve(
    env: dict[str, str],
    workdir: Workdir,
    paths: list[str],
    cookie: str,
    quick: bool,
    playground: str,
    fake: FakeLLM,
) -> dict:
    with Gunicorn(env, workdir) as server:
        server.wait_ready()
        wrk(
            server.url + "/", connections=4, seconds=2, workdir=workdir, cookie=cookie, paths=paths
        )  # every page
        before = {m["pid"]: m for m in server.worker_memory()}
        load = wrk(
            server.url + "/",
            connections=4,
            seconds=QUICK_GUNICORN_SECONDS if quick else GUNICORN_SECONDS,
            workdir=workdir,
            cookie=cookie,
            paths=paths,
        )
        after = {m["pid"]: m for m in server.worker_memory()}
        # Each new connection may land on either worker: call until both have served a provider call.
        answered = 0
        for _ in range(12):
            status, body = playground_post(server.url + playground, cookie, "hello")
            answered += status == 200 and PROVIDER_ANSWER in body
            if len({c for w in server.workers() for c in children(w)}) >= server.n_workers:
                break
        time.sleep(1.0)  # a report written after the calls
        workers = server.workers()
        runners = sorted(c for w in workers for c in children(w))
    reports = {r["pid"]: r for r in server.worker_reports() if r["pid"] in workers}
    return {
        "before": before,
        "after": after,
        "load": load,
        "reports": reports,
        "provider_calls": len(fake.requests),
        "answered": answered,
        "runners": runners,
    }


def report(inproc: dict, server: dict, n: int) -> Report:
    rss = inproc["rss_kb"]
    first = next(iter(rss.values()))
    rows = [
        [f"in-process (django.test.Client), {label}", fmt(kb / 1024, 1), fmt((kb - first) / 1024, 1)]
        for label, kb in rss.items()
    ]
    rows.append(["in-process, peak (VmHWM)", fmt(inproc["peak_kb"] / 1024, 1), ""])
    notes = [
        f"Pages, round-robin: {', '.join(p for p, s in inproc['statuses'].items() if s == 200)} (as the owner of "
        "20 guilds; the busy one has 12 channels, 5 overrides and 1,000 audit rows). Django on PostgreSQL + "
        "Redis, DEBUG off.",
    ]
    notes.append(
        "django.test.Client is not free of its own growth: every request connects signal receivers, which leaves "
        "a few weakref.finalize records behind (tracemalloc); the gunicorn workers show the server's own picture."
    )
    skipped = [f"{p} ({s})" for p, s in inproc["statuses"].items() if s != 200]
    if skipped:
        notes.append("Not 200, left out: " + ", ".join(skipped) + ".")
    litellm_in = {"in-process": inproc["litellm"]}
    if "skipped" in server:
        notes.append(f"gunicorn part skipped: {server['skipped']}.")
    else:
        load = server["load"]
        for pid, mem in server["after"].items():
            start = server["before"].get(pid, {}).get("VmRSS", 0)
            rows.append([f"gunicorn worker {pid}, after every page once", fmt(start / 1024, 1), "0.0"])
            rows.append(
                [
                    f"gunicorn worker {pid}, after the load",
                    fmt(mem.get("VmRSS", 0) / 1024, 1),
                    fmt((mem.get("VmRSS", 0) - start) / 1024, 1),
                ]
            )
        for pid, rep in server["reports"].items():
            litellm_in[f"gunicorn worker {pid}"] = rep["litellm"]
        notes.append(
            f"Playground calls through a provider: {server['answered']} answered, {server['provider_calls']} reached "
            f"the fake provider, {len(server['runners'])} worker(s) had started their model-call child process."
        )
        notes.append(
            f"gunicorn: {load['requests']:,} requests in all ({load['requests'] // 2:,} a worker on average) at 4 "
            f"connections, {fmt(load['rps'])} req/s, {load['errors']} errors. The server is slow enough "
            "(see the dashboard section) that 10,000 requests a worker would not fit the time budget: the "
            "10,000-request figure is the in-process one."
        )
    last = list(rss.values())[-1]
    goals = [
        Goal(
            "litellm imported by the web process",
            "; ".join(f"{k}: {', '.join(v) or 'no'}" for k, v in litellm_in.items()),
            "",
            "",
            "never",
            all(not v for v in litellm_in.values())
            and len(litellm_in) > 2  # in-process and both workers reported
            and server.get("answered", 0) > 0
            and len(server.get("runners", [])) == 2,  # each worker made a provider call (in its child)
        ),
        Goal(
            f"RSS after {n:,} requests (in-process)",
            f"{fmt(last / 1024, 1)} MiB",
            f"{fmt(first / 1024, 1)} MiB after one request a page",
            f"{last / first:.2f}x" if first else "",
            "",
            None,
            info=True,
        ),
    ]
    return Report(
        "web_memory",
        "5. Web worker memory",
        tables=[table(["process, moment", "RSS (MiB)", "growth (MiB)"], rows)],
        goals=goals,
        notes=notes,
    )


if __name__ == "__main__":
    cli("web_memory", run)
