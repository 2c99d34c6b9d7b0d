"""Start-up at scale: 10,000 guilds over 4 shards, Parley's ``runbot`` against the bare discord.py bot.

One in-thread FakeDiscord holds the guilds (2,500 a shard, the most Discord allows) and serves every run.
- Parley: from ``Popen`` until its log says every shard is READY **and** every shard has synced its guilds into a
  freshly migrated database; the row count and /health are checked once, afterwards.
- Bare bot: from ``Popen`` until discord.py's ``on_ready`` (every shard READY with its guilds).
Both are watched the same way: their log read every 50 ms, nothing else (no request, no database connection)
while the clock runs.
Both skip the 5 s wait between IDENTIFYs (``BOT_IDENTIFY_DELAY_SECONDS=0``, the fake allows it) and keep
discord.py's default 2 s ``guild_ready_timeout``. Peak RSS is VmHWM from /proc a moment after the end.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import time

from bench.bots import BareBot, ParleyBot
from bench.common import (
    Database,
    Workdir,
    create_database,
    postgres_available,
    proc_status,
    profile_summary,
    py_spy,
)
from bench.report import Goal, Report, cli, fmt, fmt_ratio, median, ratio, table
from tests.fakes.discord_server import FakeDiscord

GUILDS, QUICK_GUILDS = 10_000, 1_000
SHARDS = 4
TIME_GOAL, RSS_GOAL = 1.3, 1.3
READY_LINE = re.compile(r"shard \d+ is READY")
SYNCED_LINE = re.compile(r"shard (\d+) synced (\d+) guilds")
SETTLE = 2.0  # seconds after the end before reading peak RSS: late work counts too
PROFILE_FOCUS = (
    "botcore/",
    "llm/",
    "django/db/",
    "discord/state.py",
    "discord/guild.py",
    "asgiref/",
    "logging/",
)


@dataclasses.dataclass
class Run:
    bot: str
    db: str
    ready_s: float  # every shard READY (Parley: its log says so)
    done_s: float  # READY and, for Parley, every guild in the database
    peak_rss_mb: float
    rss_mb: float
    healthy: bool | None = None  # Parley: /health said 200 once the clock stopped
    guilds: int = 0
    profile: list[tuple[str, float]] = dataclasses.field(default_factory=list)

    @property
    def label(self) -> str:
        bot = "bare discord.py bot" if self.bot == "bare" else f"Parley, {self.db}"
        return bot if self.guilds > 1 else f"{bot}, 1 guild (idle footprint)"


def build_fake(n: int) -> FakeDiscord:
    fake = FakeDiscord().start()
    for i in range(n):
        fake.add_guild(name=f"Guild {i:05d}", shard=(i % SHARDS, SHARDS), channels=["general", "random"])
    return fake


def _memory(pid: int) -> tuple[float, float]:
    status = proc_status(pid)
    return status.get("VmHWM", 0) / 1024, status.get("VmRSS", 0) / 1024


def run_bare(fake: FakeDiscord, workdir: Workdir, n: int) -> Run:
    """From Popen to discord.py's on_ready (every shard READY, every guild received)."""
    bot = BareBot(fake, workdir, shard_count=SHARDS)
    t0 = time.time()
    with bot:
        bot.wait_ready(timeout=300)
        ready = time.time() - t0
        guilds = next(e["guilds"] for e in bot.events() if e["event"] == "ready")
        if guilds != n:
            raise RuntimeError(f"the bare bot saw {guilds} guilds, expected {n}")
        time.sleep(SETTLE)
        peak, rss = _memory(bot.pid)
    return Run("bare", "", ready, ready, peak, rss, guilds=n)


def run_parley(fake: FakeDiscord, workdir: Workdir, kind: str, n: int, profile: bool) -> list[Run]:
    """A first start on an empty database, then (for the scaled runs) a restart on the data it wrote."""
    db = create_database(kind, workdir)
    try:
        runs = [_start_parley(fake, workdir, db, db.label, n, profile)]
        if n > 1:
            runs.append(_start_parley(fake, workdir, db, f"{db.label}, restart", n, profile))
    finally:
        db.drop()
    return runs


def _start_parley(
    fake: FakeDiscord, workdir: Workdir, db: Database, label: str, n: int, profile: bool
) -> Run:
    bot = ParleyBot(fake, workdir, db, "--shard-count", str(SHARDS))
    t0 = time.time()
    ready = done = 0.0
    with bot:
        collapsed = workdir.path / f"{bot.log_path.stem}.collapsed"
        spy = py_spy(bot.pid, 60, collapsed) if profile else None
        deadline = time.monotonic() + 300
        while not done:
            bot.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"Parley not started after 300 s:\n{bot.tail()}")
            log = bot.log()
            if not ready and len(READY_LINE.findall(log)) >= SHARDS:
                ready = time.time() - t0
            synced = {int(shard): int(count) for shard, count in SYNCED_LINE.findall(log)}
            if ready and len(synced) >= SHARDS and sum(synced.values()) >= n:
                done = time.time() - t0
            time.sleep(0.05)
        rows = db.count("SELECT COUNT(*) FROM guilds_guild WHERE is_active")
        if rows != n:
            raise RuntimeError(f"Parley's log says every guild synced, but the database has {rows} of {n}")
        healthy = bool(bot.healthy())
        time.sleep(SETTLE)
        peak, rss = _memory(bot.pid)
        summary = []
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes what it has on Ctrl-C
            spy.wait()
            summary = profile_summary(collapsed, top=15, focus=PROFILE_FOCUS)
    return Run("parley", label, ready, done, peak, rss, healthy, n, summary)


def report(runs: list[Run], n: int, skipped: list[str]) -> Report:
    scaled = [r for r in runs if r.guilds > 1]
    bare = [r for r in scaled if r.bot == "bare"]
    bare_done = median([r.done_s for r in bare])
    bare_peak = median([r.peak_rss_mb for r in bare])
    rows = [
        [
            r.label,
            fmt(r.ready_s, 2),
            fmt(r.done_s, 2),
            fmt_ratio(ratio(r.done_s, bare_done)) if r.guilds > 1 else "",
            "" if r.healthy is None else ("yes" if r.healthy else "**no**"),
            fmt(r.peak_rss_mb, 0),
            fmt_ratio(ratio(r.peak_rss_mb, bare_peak)) if r.guilds > 1 else "",
        ]
        for r in runs
    ]
    main_table = table(
        [
            "run (in order)",
            "all shards READY (s)",
            "READY + every guild in the database (s)",
            "vs bare (median)",
            "/health 200 afterwards",
            "peak RSS (MiB)",
            "vs bare (median)",
        ],
        rows,
    )
    goals = []
    for db in ("SQLite", "SQLite, restart", "PostgreSQL", "PostgreSQL, restart"):
        mine = [r for r in scaled if r.db == db]
        if not mine:
            continue
        done, peak = median([r.done_s for r in mine]), median([r.peak_rss_mb for r in mine])
        goals += [
            _at_most(f"start-up time, {db}", done, bare_done, TIME_GOAL, digits=1, unit="s"),
            _at_most(f"peak RSS, {db}", peak, bare_peak, RSS_GOAL, unit="MiB"),
        ]
    idle = {r.bot: r.peak_rss_mb for r in runs if r.guilds <= 1}
    if len(idle) == 2 and bare:
        parley_peak = median([r.peak_rss_mb for r in scaled if r.bot == "parley"])
        grown = (parley_peak - idle["parley"], bare_peak - idle["bare"])
        goals.append(
            Goal(
                f"RSS growth from idle to {n:,} guilds",
                f"{fmt(grown[0])} MiB",
                f"{fmt(grown[1])} MiB",
                fmt_ratio(ratio(*grown)),
                "",
                None,
                info=True,
            )
        )
    notes = [
        f"{n:,} guilds (2 channels each) over {SHARDS} shards from one in-thread fake server; each Parley run starts "
        "on an empty, freshly migrated database, so every guild, its settings, channels and a guild.join audit row "
        "are written (the first start of a big bot: the worst case). The restart then starts a new process on that "
        "data, as a deploy does: only what changed is written.",
        "Times are from process start (imports and Django set-up included); the goals use the medians. Parley's "
        "READY time is when its log said every shard was READY, its end when every shard had logged its guild "
        "sync; then the database's row count and /health were checked once.",
        "The idle runs (1 guild, same 4 shards) show the fixed cost of each process: imports and set-up.",
        *skipped,
    ]
    for r in runs:
        if r.profile:
            notes.append(
                f"py-spy, {r.label} (inclusive share of samples): "
                + "; ".join(f"{f} {s:.0f}%" for f, s in r.profile)
            )
    return Report("startup", "2. Start-up at scale", tables=[main_table], goals=goals, notes=notes)


def _at_most(measure: str, value: float, bare: float, limit: float, *, digits: int = 0, unit: str) -> Goal:
    """The goal that Parley's ``value`` is at most ``limit`` times the bare bot's."""
    return Goal(
        measure,
        f"{fmt(value, digits)} {unit}",
        f"{fmt(bare, digits)} {unit}",
        fmt_ratio(ratio(value, bare)),
        f"≤ {limit}x bare bot",
        ratio(value, bare) <= limit,
    )


def run(quick: bool, profile: bool = False) -> Report:
    n = QUICK_GUILDS if quick else GUILDS
    have_pg = postgres_available()
    skipped = [] if have_pg else ["PostgreSQL was not reachable at BENCH_PG_URL: its run was skipped."]
    plan = ["bare", "sqlite", "bare", "postgres" if have_pg else "sqlite"]
    if quick:
        plan = ["bare", "sqlite"]
    runs = []
    with Workdir("startup") as workdir:
        if not quick:
            with FakeDiscord() as small:  # the fixed cost of each process
                small.add_guild(name="Only guild", channels=["general", "random"])
                runs += [run_bare(small, workdir, 1), *run_parley(small, workdir, "sqlite", 1, False)]
        fake = build_fake(n)
        try:
            for step in plan:
                results = (
                    [run_bare(fake, workdir, n)]
                    if step == "bare"
                    else run_parley(fake, workdir, step, n, profile)
                )
                runs += results
                for result in results:
                    print(
                        f"  {result.label}: ready {result.ready_s:.1f} s, done {result.done_s:.1f} s, "
                        f"peak RSS {result.peak_rss_mb:.0f} MiB",
                        flush=True,
                    )
        finally:
            fake.stop()
    return report(runs, n, skipped)


if __name__ == "__main__":
    cli("startup", lambda quick: run(quick, profile=bool(os.environ.get("BENCH_PROFILE"))))
