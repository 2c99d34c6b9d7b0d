"""Real time: does the playground stall a web worker, and how soon does a settings save reach the bot?

1. **Worker stall.** gunicorn with one uvicorn worker (so every request shares it) on the embedded default, an
   OpenAI key pointed at the local fake OpenAI server. A client thread sends ``GET /api/v1/health`` back to back
   for ``NORMAL_SECONDS`` (its p95 is "normal"), then, while it goes on, the playground's first call to a provider
   (a form POST, as without JavaScript) runs: litellm's import and the call. "During" is the p95 of the health
   requests that started while the POST was open. Parley runs the call in the worker's child process
   (``llm/runner.py``); the baseline beside it is the same server with the call made inside the worker
   (``BENCH_LLM_INLINE=1``, as before the child existed). Goal: during < 2x normal, for Parley.
2. **Settings to the bot.** A real ``runbot`` against the fake Discord answers a target user who writes every
   ``SEND_EVERY`` seconds; a separate process (as the web does) saves the guild's system prompt through
   ``guilds.services``, toggling it ``SAVES`` times. The delay of a save is how long after it messages were still
   answered under the old prompt (the offline model says whether it saw one), so the resolution is one message
   interval. With Redis the save is pushed to the bot over the channel layer; without it (the embedded default)
   the bot's once-a-second version check finds it. Goal: every save applied within a second, both ways.
"""

from __future__ import annotations

import http.client
import threading
import time
from typing import Any

from bench.bots import ParleyBot
from bench.common import REDIS_URL, Workdir, database, django_task, redis_available
from bench.report import Goal, Report, cli, fmt, fmt_ratio, percentile, ratio, table
from bench.web import Gunicorn, playground_post, redis_cleanup
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.llm_server import FakeLLM

NORMAL_SECONDS, QUICK_NORMAL_SECONDS = 6.0, 3.0
SAVES, QUICK_SAVES = 6, 2
SAVE_GAP_SECONDS = 2.5
SEND_EVERY = 0.02
TARGET_ID = 880_000_000_000_000_001
STALL_GOAL = 2.0
APPLY_GOAL_SECONDS = 1.0
TITLE = "6. Real time"


# ---------------------------------------------------------------- 1. worker stall
class HealthLoad(threading.Thread):
    """GET /api/v1/health back to back on one keep-alive connection; (start time, latency) of each."""

    def __init__(self, port: int) -> None:
        super().__init__(name="health-load", daemon=True)
        self.port = port
        self.samples: list[tuple[float, float]] = []
        self.failures = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                conn.request("GET", "/api/v1/health", headers={"Host": "127.0.0.1"})
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except OSError:
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            if ok:
                self.samples.append((started, time.monotonic() - started))
            else:
                self.failures += 1

    def p95_ms(self, start: float, end: float) -> tuple[float, int]:
        window = [lat for t, lat in self.samples if start <= t < end]
        return percentile(window, 95) * 1000, len(window)


def stall_run(inline: bool, quick: bool) -> dict[str, Any]:
    with Workdir("live-stall") as workdir, database("sqlite", workdir) as db, FakeLLM() as fake:
        fake.reply_with("the provider answered the playground")
        env = workdir.env(
            **db.env,
            DJANGO_DEBUG="false",
            DJANGO_ALLOWED_HOSTS="127.0.0.1",
            OPENAI_API_KEY="sk-bench",
            OPENAI_API_BASE=fake.url,
            **({"BENCH_LLM_INLINE": "1"} if inline else {}),
        )
        fx = django_task(env, "dashboard_fixture", guilds=1, channels=2, overrides=0, audit_rows=10)
        cookie = f"{fx['owner']['name']}={fx['owner']['value']}"
        with Gunicorn(env, workdir, workers=1) as server:
            server.wait_ready()
            load = HealthLoad(server.port)
            load.start()
            time.sleep(1.0)  # connections and caches warm
            normal_start = time.monotonic()
            time.sleep(QUICK_NORMAL_SECONDS if quick else NORMAL_SECONDS)
            post_start = time.monotonic()
            status, body = playground_post(
                f"{server.url}/dashboard/guilds/{fx['busy']}/playground/", cookie, "hello"
            )
            post_end = time.monotonic()
            load.stopping.set()
            load.join(10)
        if status != 200 or "the provider answered the playground" not in body:
            raise RuntimeError(f"the playground did not answer through the provider (HTTP {status})")
        normal, n_normal = load.p95_ms(normal_start, post_start)
        during, n_during = load.p95_ms(post_start, post_end)
        return {
            "normal_p95": normal,
            "during_p95": during,
            "n_normal": n_normal,
            "n_during": n_during,
            "call_seconds": post_end - post_start,
            "failures": load.failures,
            "provider_calls": len(fake.requests),
        }


# ---------------------------------------------------------------- 2. settings to the bot
class Asker(threading.Thread):
    """The target user writes every SEND_EVERY seconds; (wall time sent, message id) of each."""

    def __init__(self, fake: FakeDiscord, channel: int, user: dict[str, Any]) -> None:
        super().__init__(name="asker", daemon=True)
        self.fake, self.channel, self.user = fake, channel, user
        self.sent: list[tuple[float, int]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            msg = self.fake.send_user_message(self.channel, "what do you see?", author=self.user)
            self.sent.append((time.time(), int(msg["id"])))
            time.sleep(SEND_EVERY)


def apply_delays(
    fake: FakeDiscord, sent: list[tuple[float, int]], saves: list[dict[str, Any]]
) -> tuple[list[float], int]:
    """For each save: how long after it a message was still answered under the previous prompt (0 if none)."""
    seen: dict[int, bool] = {}
    for record in fake.sent_messages:
        if record["reply_to"] is not None:
            content = fake.messages[record["id"]]["content"]
            seen[record["reply_to"]] = "system prompt seen" in content
    delays = []
    for i, save in enumerate(saves):
        until = saves[i + 1]["at"] if i + 1 < len(saves) else float("inf")
        stale = [
            at - save["at"]
            for at, mid in sent
            if save["at"] <= at < until and mid in seen and seen[mid] != bool(save["prompt"])
        ]
        delays.append(max(stale, default=0.0))
    answered = sum(1 for _, mid in sent if mid in seen)
    return delays, answered


def push_run(with_redis: bool, quick: bool) -> dict[str, Any]:
    with Workdir("live-push") as workdir, database("sqlite", workdir) as db, FakeDiscord() as fake:
        server = fake.add_guild(name="Live", channels=["general"])
        channel, guild_id = int(server["channels"][0]["id"]), int(server["id"])
        user = fake.add_user("target", user_id=TARGET_ID)
        extra = (
            {"REDIS_URL": REDIS_URL, "CACHE_KEY_PREFIX": f"parley-bench-live-{guild_id}"}
            if with_redis
            else {}
        )
        env = workdir.env(**db.env, **extra)
        try:
            with ParleyBot(fake, workdir, db, targets=[TARGET_ID], **extra) as bot:
                bot.wait_ready()
                if with_redis:
                    bot.wait_until(lambda: "listening for settings changes" in bot.log(), 30, "the listener")
                asker = Asker(fake, channel, user)
                asker.start()
                saves = django_task(
                    env,
                    "settings_saves",
                    discord_id=guild_id,
                    saves=QUICK_SAVES if quick else SAVES,
                    gap=SAVE_GAP_SECONDS,
                )
                asker.stopping.set()
                asker.join(5)
                total = len(asker.sent)
                fake.wait_for(lambda: len(fake.sent_messages) >= total or None, timeout=60)
        finally:
            if with_redis:
                redis_cleanup(extra["CACHE_KEY_PREFIX"])
        delays, answered = apply_delays(fake, asker.sent, saves)
        return {"delays": delays, "sent": total, "answered": answered}


# ---------------------------------------------------------------- the report
def run(quick: bool) -> Report:
    parley, inline = stall_run(False, quick), stall_run(True, quick)
    stall_ratio = ratio(parley["during_p95"], parley["normal_p95"])
    base_ratio = ratio(inline["during_p95"], inline["normal_p95"])
    rows = [
        [
            label,
            fmt(r["normal_p95"], 1),
            r["n_normal"],
            fmt(r["during_p95"], 1),
            r["n_during"],
            fmt(ratio(r["during_p95"], r["normal_p95"]), 2),
            fmt(r["call_seconds"], 1),
            r["failures"],
        ]
        for label, r in (
            ("Parley (call in the worker's child)", parley),
            ("baseline (call in the worker)", inline),
        )
    ]
    goals = [
        Goal(
            "health p95 during the first playground call / normal, same worker",
            f"{fmt(parley['during_p95'], 1)} ms vs {fmt(parley['normal_p95'], 1)} ms",
            f"in the worker: {fmt_ratio(base_ratio)}",
            fmt_ratio(stall_ratio),
            f"< {STALL_GOAL:g}x",
            stall_ratio < STALL_GOAL,
        )
    ]
    runs = {"Redis push": push_run(True, quick)} if redis_available() else {}
    runs["embedded (version check)"] = push_run(False, quick)
    push_rows = []
    for label, r in runs.items():
        worst = max(r["delays"])
        push_rows.append(
            [
                label,
                len(r["delays"]),
                fmt(percentile(r["delays"], 50) * 1000),
                fmt(worst * 1000),
                r["answered"],
            ]
        )
        goals.append(
            Goal(
                f"save to the bot's answers, {label}, worst of {len(r['delays'])}",
                f"{fmt(worst * 1000)} ms",
                "",
                "",
                f"≤ {APPLY_GOAL_SECONDS * 1000:g} ms",
                worst <= APPLY_GOAL_SECONDS,
            )
        )
    notes = [
        "Worker stall: one uvicorn worker, SQLite, the fake OpenAI server answering at once, so the call is litellm's "
        "import plus one request; health requests sent back to back on one connection.",
        f"Settings: the target user writes every {SEND_EVERY * 1000:g} ms (the delay's resolution); a save toggles "
        f"the guild's system prompt every {SAVE_GAP_SECONDS:g} s through guilds.services in another process.",
    ]
    if not redis_available():
        notes.append("Redis push not measured: no Redis at " + REDIS_URL)
    return Report(
        "live",
        TITLE,
        tables=[
            table(
                ["server", "normal p95 (ms)", "n", "during p95 (ms)", "n", "ratio", "call (s)", "failed"],
                rows,
            ),
            table(
                ["settings path", "saves", "median delay (ms)", "worst (ms)", "messages answered"], push_rows
            ),
        ],
        goals=goals,
        notes=notes,
    )


if __name__ == "__main__":
    cli("live", run)
