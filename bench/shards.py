"""Shards that place themselves, at scale: 50,000 guilds over 20 shards in 2 ``runbot --shards auto`` processes,
beside the same 2 processes given their shards by hand (``--shard-count 20 --shard-ids 0-9`` and ``10-19``).

One in-thread FakeDiscord holds the guilds (2,500 a shard, the most Discord allows), reports ``max_concurrency`` 4
and refuses an IDENTIFY sooner than 1 s after the last one in its bucket (Discord: 5 s), so both runs pace their
IDENTIFYs through the database (``BOT_IDENTIFY_DELAY_SECONDS=1``) as they would for Discord. The leases keep their
production defaults. Each run starts on a freshly migrated SQLite database (the embedded default).

- start-up: from the first ``Popen`` until every shard is READY in exactly one process (their /health bodies), and
  until, besides, every process answers /health 200 (its shards' guilds synced) and every guild is an active row;
- memory: each process's RSS (and peak) a moment after the end, and their sum per guild.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time

from bench.bots import ParleyBot
from bench.common import Workdir, create_database, proc_status
from bench.report import Goal, Report, cli, fmt, fmt_ratio, ratio, table
from tests.fakes.discord_server import FakeDiscord

GUILDS, QUICK_GUILDS = 50_000, 2_000
SHARDS, QUICK_SHARDS = 20, 4
PROCESSES = 2
MAX_CONCURRENCY = 4
IDENTIFY_WINDOW = 1.0
TIMEOUT = 600.0
SETTLE = 2.0  # seconds after the end before reading RSS: late work counts too


@dataclasses.dataclass
class Run:
    mode: str  # "auto" or "hand"
    ready_s: float  # every shard READY in exactly one process
    done_s: float  # ... and every guild synced
    shards: list[int]  # shards per process
    rss_mb: list[float]
    peak_mb: list[float]
    identifies: int
    invalid_sessions: int
    guilds: int

    @property
    def label(self) -> str:
        return "--shards auto" if self.mode == "auto" else "--shard-ids by hand (baseline)"

    @property
    def kib_per_guild(self) -> float:
        return sum(self.rss_mb) * 1024 / self.guilds


def build_fake(n: int, shards: int) -> FakeDiscord:
    fake = FakeDiscord(
        recommended_shards=shards, max_concurrency=MAX_CONCURRENCY, identify_interval=IDENTIFY_WINDOW
    ).start()
    for i in range(n):
        fake.add_guild(name=f"Guild {i:05d}", shard=(i % shards, shards), channels=["general", "random"])
    return fake


def _args(mode: str, index: int, shards: int) -> list[str]:
    if mode == "auto":
        return ["--shards", "auto"]
    per = shards // PROCESSES
    last = shards - 1 if index == PROCESSES - 1 else (index + 1) * per - 1
    return ["--shard-count", str(shards), "--shard-ids", f"{index * per}-{last}"]


def _states(bots: list[ParleyBot]) -> tuple[dict[int, list[str]], list[int], bool]:
    """Shard id -> the state each process reports for it; how many shards each runs; whether all answer 200."""
    states: dict[int, list[str]] = {}
    per_process = []
    healthy = True
    for bot in bots:
        bot.check_alive()
        answer = bot.health()
        healthy = healthy and answer is not None and answer[0] == 200
        shards = answer[1]["shards"] if answer else {}
        per_process.append(len(shards))
        for shard, state in shards.items():
            states.setdefault(int(shard), []).append(state)
    return states, per_process, healthy


def run_mode(fake: FakeDiscord, workdir: Workdir, mode: str, n: int, shards: int) -> Run:
    db = create_database("sqlite", workdir)
    identifies, invalid = fake.identify_count, fake.invalid_session_count
    bots = [
        ParleyBot(fake, workdir, db, *_args(mode, i, shards), BOT_IDENTIFY_DELAY_SECONDS=str(IDENTIFY_WINDOW))
        for i in range(PROCESSES)
    ]
    ready = done = 0.0
    per_process: list[int] = []
    try:
        with contextlib.ExitStack() as stack:
            t0 = time.time()
            for bot in bots:
                stack.enter_context(bot)
            while not done:
                if time.time() - t0 > TIMEOUT:
                    tails = "\n".join(bot.tail() for bot in bots)
                    raise TimeoutError(f"{mode}: not started after {TIMEOUT:.0f} s:\n{tails}")
                states, per_process, healthy = _states(bots)
                placed = sorted(states) == list(range(shards)) and all(
                    s == ["READY"] for s in states.values()
                )
                if placed and not ready:
                    ready = time.time() - t0
                if placed and healthy and db.count("SELECT COUNT(*) FROM guilds_guild WHERE is_active") >= n:
                    done = time.time() - t0
                time.sleep(0.2)
            time.sleep(SETTLE)
            status = [proc_status(bot.pid) for bot in bots]
    finally:
        db.drop()
    return Run(
        mode,
        ready,
        done,
        per_process,
        [s.get("VmRSS", 0) / 1024 for s in status],
        [s.get("VmHWM", 0) / 1024 for s in status],
        fake.identify_count - identifies,
        fake.invalid_session_count - invalid,
        n,
    )


def report(runs: list[Run], n: int, shards: int) -> Report:
    hand = next(r for r in runs if r.mode == "hand")
    rows = [
        [
            r.label,
            fmt(r.ready_s, 1),
            fmt(r.done_s, 1),
            fmt_ratio(ratio(r.done_s, hand.done_s)),
            " + ".join(str(s) for s in r.shards),
            " + ".join(fmt(m) for m in r.rss_mb),
            " + ".join(fmt(m) for m in r.peak_mb),
            fmt(r.kib_per_guild, 2),
            r.identifies,
            r.invalid_sessions,
        ]
        for r in runs
    ]
    main = table(
        [
            "run (in order)",
            "all shards READY (s)",
            "READY + every guild in the database (s)",
            "vs by hand",
            "shards per process",
            "RSS per process (MiB)",
            "peak RSS (MiB)",
            "RSS per guild (KiB)",
            "IDENTIFYs",
            "invalid sessions",
        ],
        rows,
    )
    goals = []
    for r in runs:
        goals.append(
            Goal(
                f"start-up time, {r.label}",
                f"{fmt(r.done_s, 1)} s",
                f"{fmt(hand.done_s, 1)} s",
                fmt_ratio(ratio(r.done_s, hand.done_s)),
                "",
                None,
                info=True,
            )
        )
        goals.append(
            Goal(
                f"every shard READY once, no invalid session, {r.label}",
                f"{r.identifies} IDENTIFYs, {r.invalid_sessions} invalid",
                "",
                "",
                f"{shards} IDENTIFYs, 0 invalid",
                r.identifies == shards and r.invalid_sessions == 0,
            )
        )
    notes = [
        f"{n:,} guilds (2 channels each) over {shards} shards in {PROCESSES} processes, from one in-thread fake "
        f"server reporting max_concurrency {MAX_CONCURRENCY} and refusing an IDENTIFY sooner than "
        f"{IDENTIFY_WINDOW:g} s after the last one of its bucket; both runs pace IDENTIFYs through the database "
        f"at that interval (plus the bots' margin), on a freshly migrated SQLite database each.",
        "--shards auto waits for its peers before its first claim (twice the lease heartbeat, default settings): "
        "that wait is part of its start-up time.",
        "RSS per guild is the processes' summed RSS over the guilds: the fixed cost of each process (imports, "
        "Django) is in it.",
    ]
    return Report("shards", "Shards that place themselves", tables=[main], goals=goals, notes=notes)


def run(quick: bool) -> Report:
    n, shards = (QUICK_GUILDS, QUICK_SHARDS) if quick else (GUILDS, SHARDS)
    runs = []
    with Workdir("shards") as workdir:
        fake = build_fake(n, shards)
        try:
            for mode in ("hand", "auto"):
                result = run_mode(fake, workdir, mode, n, shards)
                runs.append(result)
                print(
                    f"  {result.label}: ready {result.ready_s:.1f} s, done {result.done_s:.1f} s, "
                    f"RSS {sum(result.rss_mb):.0f} MiB, {result.invalid_sessions} invalid sessions",
                    flush=True,
                )
        finally:
            fake.stop()
    return report(runs, n, shards)


if __name__ == "__main__":
    cli("shards", run)
