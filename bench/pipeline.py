"""Message pipeline: messages per second and time to reply, Parley's ``runbot`` against a bare discord.py bot.

Both bots run as real subprocesses against one in-thread FakeDiscord per run; this process only injects user
messages (through FakeDiscord's Python API) and reads when each reply reached the fake. Parley uses the offline
model, so what is measured is Parley's own pipeline, not a model. The set-up: 2 shards, 4 guilds (2 on each
shard, 2 channels each), one target user, the bot answering with ``message.reply``, measured once ``/health``
says ready (Parley) or every shard is READY (bare bot).

Per bot: a warm-up, then
- **throughput**: N messages from the target user, WINDOW in flight (as many concurrent senders, each waiting
  for its answer before the next), over the 8 channels; messages/s = replies / (last reply - first injection);
- **CPU per message**: the bot process's CPU seconds over the throughput phase, divided by the replies;
- **latency**: RATE_N messages injected open-loop at RATE messages/s (the same offered load for every bot);
  p50/p99 of injection -> reply reaching the fake.
Runs come in interleaved pairs (bare, Parley, then Parley, bare): each pair's ratio compares two runs taken
minutes apart on the same machine state, and the goal is the median of the pairs' ratios. CPU shares (bot, fake,
PostgreSQL) over the throughput phase show which process is the bottleneck.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import time
from collections.abc import Sequence
from typing import Any

from bench.bots import BareBot, ParleyBot
from bench.common import (
    Database,
    Workdir,
    cpu_seconds,
    create_database,
    postgres_available,
    profile_summary,
    py_spy,
)
from bench.report import Goal, Report, cli, fmt, fmt_ratio, median, percentile, ratio, table
from tests.fakes.discord_server import FakeDiscord
from tests.support import wait_until

N, QUICK_N = 2000, 300
WINDOW = 20
SHARDS = 2
GUILDS = 4
CHANNELS_PER_GUILD = 2
PAIRS = 2
RATE, RATE_N, QUICK_RATE_N = 50.0, 300, 100
WARMUP = 40
TARGET_ID = 424242424242424242
GOAL = 0.8
# What the profile summary lists: our code and the library calls it spends its time in.
PROFILE_FOCUS = (
    "botcore/",
    "llm/",
    "bench/bare_bot",
    "CursorWrapper.execute",
    "SyncToAsync.thread_handler",
    "Logger._log",
    "HTTPClient.request",
    "Typing.__aenter__",
    "parse_message_create",
)


@dataclasses.dataclass
class Phase:
    sent: int
    answered: int
    seconds: float
    latencies: list[float]
    edits: int = 0  # message edits the bot made (streaming a reply that was not complete when first sent)
    bot_cpu: float = 0.0  # CPU seconds of the bot process during the phase

    @property
    def per_second(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        return percentile(self.latencies, p) * 1000

    @property
    def cpu_ms_per_message(self) -> float:
        return 1000 * self.bot_cpu / self.answered if self.answered else float("nan")


@dataclasses.dataclass
class Run:
    bot: str  # "bare" or "parley"
    db: str  # "", "SQLite", "PostgreSQL"
    pair: int  # runs with the same pair number are compared with each other
    throughput: Phase
    paced: Phase
    cpu: dict[str, float]  # percent of one core during the throughput phase
    profile: list[tuple[str, float]] = dataclasses.field(default_factory=list)

    @property
    def label(self) -> str:
        if self.bot == "bare":
            return f"bare discord.py bot (pair {self.pair})"
        return f"Parley, {self.db} (pair {self.pair})"


def inject(
    fake: FakeDiscord,
    channels: Sequence[int],
    author: dict[str, Any],
    n: int,
    *,
    window: int | None = None,
    rate: float | None = None,
    tag: str = "",
) -> Phase:
    """Send ``n`` messages (closed loop with ``window`` in flight, or open loop at ``rate``/s) and collect replies."""
    base, base_edits = len(fake.sent_messages), len(fake.edits)
    injected: dict[int, float] = {}
    started = time.time()
    for i in range(n):
        if window is not None:
            while i - (len(fake.sent_messages) - base) >= window:
                time.sleep(0.001)
        elif rate is not None:
            delay = started + i / rate - time.time()
            if delay > 0:
                time.sleep(delay)
        sent_at = time.time()
        msg = fake.send_user_message(
            channels[i % len(channels)], f"{tag} message {i}: what do you think about this?", author=author
        )
        injected[int(msg["id"])] = sent_at
    with contextlib.suppress(TimeoutError):  # reported as answered < sent
        wait_until(lambda: len(fake.sent_messages) - base >= n, max(60.0, n / 20), "replies", interval=0.01)
    replies = [m for m in fake.sent_messages[base:] if m.get("reply_to") in injected]
    latencies = [m["t"] - injected[m["reply_to"]] for m in replies]
    last = max((m["t"] for m in replies), default=started)
    edits = len(fake.edits) - base_edits
    return Phase(sent=n, answered=len(replies), seconds=last - started, latencies=latencies, edits=edits)


def measure(
    fake: FakeDiscord,
    bot: Any,
    channels: list[int],
    quick: bool,
    db: Database | None,
    workdir: Workdir,
    profile: bool,
) -> tuple[Phase, Phase, dict[str, float], list[tuple[str, float]]]:
    author = fake.add_user("target", user_id=TARGET_ID)
    warm = inject(fake, channels, author, WARMUP, window=8, tag="warm-up")
    if warm.answered < WARMUP:
        raise RuntimeError(f"{bot.name} answered {warm.answered}/{WARMUP} warm-up messages:\n{bot.tail()}")
    n = QUICK_N if quick else N
    pg_pids = db.backend_pids() if db else []
    before = {"bot": cpu_seconds(bot.pid), "fake": time.process_time(), "db": sum(map(cpu_seconds, pg_pids))}
    collapsed = workdir.path / f"{bot.log_path.stem}.collapsed"  # unique per run; BENCH_KEEP=1 keeps it
    spy = py_spy(bot.pid, n / 20, collapsed) if profile else None
    wall = time.time()
    throughput = inject(fake, channels, author, n, window=WINDOW, tag="bench")
    wall = time.time() - wall
    throughput.bot_cpu = cpu_seconds(bot.pid) - before["bot"]
    cpu = {
        "bot": 100 * (cpu_seconds(bot.pid) - before["bot"]) / wall,
        "fake": 100 * (time.process_time() - before["fake"]) / wall,
        "db": 100 * (sum(map(cpu_seconds, pg_pids)) - before["db"]) / wall if pg_pids else 0.0,
    }
    summary: list[tuple[str, float]] = []
    if spy is not None:
        spy.send_signal(signal.SIGINT)  # py-spy writes what it has on Ctrl-C
        spy.wait()
        summary = profile_summary(collapsed, top=15, focus=PROFILE_FOCUS)
    paced = inject(fake, channels, author, QUICK_RATE_N if quick else RATE_N, rate=RATE, tag="paced")
    return throughput, paced, cpu, summary


def guilds(fake: FakeDiscord) -> list[int]:
    """GUILDS guilds, spread evenly over the SHARDS shards; their channels' ids."""
    channels = []
    for i in range(GUILDS):
        names = [f"chat-{i}-{c}" for c in range(CHANNELS_PER_GUILD)]
        guild = fake.add_guild(name=f"Bench Guild {i}", channels=names, shard=(i % SHARDS, SHARDS))
        channels += [int(c["id"]) for c in guild["channels"]]
    return channels


def run_bare(workdir: Workdir, pair: int, quick: bool, profile: bool) -> Run:
    with FakeDiscord() as fake:
        channels = guilds(fake)
        with BareBot(fake, workdir, targets=[TARGET_ID], shard_count=SHARDS) as bot:
            bot.wait_ready()
            throughput, paced, cpu, prof = measure(fake, bot, channels, quick, None, workdir, profile)
    return Run("bare", "", pair, throughput, paced, cpu, prof)


def run_parley(workdir: Workdir, kind: str, pair: int, quick: bool, profile: bool, **bot_env: str) -> Run:
    """``bot_env``: extra environment for runbot (experiments: another LOG_LEVEL, a PYTHONPATH, ...)."""
    db = create_database(kind, workdir)
    try:
        with FakeDiscord() as fake:
            channels = guilds(fake)
            args = ("--shard-count", str(SHARDS))
            with ParleyBot(fake, workdir, db, *args, targets=[TARGET_ID], **bot_env) as bot:
                bot.wait_ready()
                throughput, paced, cpu, prof = measure(fake, bot, channels, quick, db, workdir, profile)
                errors = [m for m in fake.sent_messages if "offline model" not in m["content"]]
                if errors:
                    raise RuntimeError(
                        f"Parley answered {len(errors)} messages with an error: {errors[0]['content']}"
                    )
    finally:
        db.drop()
    return Run("parley", db.label, pair, throughput, paced, cpu, prof)


def pair_ratios(runs: list[Run], db: str) -> list[tuple[float, float]]:
    """(throughput ratio, CPU-per-message ratio) of each pair of ``db``'s Parley run with its bare run."""
    out = []
    for parley in (r for r in runs if r.db == db):
        bare = next(r for r in runs if r.bot == "bare" and r.pair == parley.pair)
        out.append(
            (
                ratio(parley.throughput.per_second, bare.throughput.per_second),
                ratio(parley.throughput.cpu_ms_per_message, bare.throughput.cpu_ms_per_message),
            )
        )
    return out


def report(runs: list[Run], quick: bool, skipped: list[str]) -> Report:
    rows = []
    for r in runs:
        t, p = r.throughput, r.paced
        rows.append(
            [
                r.label,
                f"{t.answered}/{t.sent}",
                fmt(t.per_second, 0),
                fmt(t.cpu_ms_per_message, 2),
                fmt(t.pct(50), 0),
                fmt(t.pct(99), 0),
                t.edits,
                f"{p.answered}/{p.sent}",
                fmt(p.pct(50), 1),
                fmt(p.pct(99), 1),
                fmt(r.cpu["bot"], 0),
                fmt(r.cpu["fake"], 0),
                fmt(r.cpu["db"], 0) if r.db == "PostgreSQL" else "",
            ]
        )
    n = QUICK_N if quick else N
    main_table = table(
        [
            "run (in order)",
            "answered",
            "msg/s",
            "bot CPU ms/msg",
            f"p50 ms ({WINDOW} in flight)",
            "p99 ms",
            "edits",
            f"answered at {RATE:g}/s",
            f"p50 ms at {RATE:g}/s",
            "p99 ms",
            "bot CPU %",
            "fake CPU %",
            "PostgreSQL CPU %",
        ],
        rows,
    )
    goals = []
    for db in ("SQLite", "PostgreSQL"):
        pairs = pair_ratios(runs, db)
        if not pairs:
            continue
        tput = median([t for t, _ in pairs])
        cpu = median([c for _, c in pairs])
        goals.append(
            Goal(
                measure=f"throughput, {db}, median of {len(pairs)} interleaved pairs",
                figure=", ".join(fmt_ratio(t) for t, _ in pairs) + " (each pair)",
                baseline="the bare bot of the same pair",
                ratio=fmt_ratio(tput),
                target=f"≥ {GOAL}x bare bot",
                met=tput >= GOAL,
                note=f"bot CPU per message {fmt_ratio(cpu)} the bare bot's",
            )
        )
        goals.append(
            Goal(
                measure=f"bot CPU per message, {db}, median of the pairs",
                figure=", ".join(fmt_ratio(c) for _, c in pairs) + " (each pair)",
                baseline="the bare bot of the same pair",
                ratio=fmt_ratio(cpu),
                target="",
                met=None,
                info=True,
            )
        )
    notes = [
        f"{n:,} messages per throughput run ({WINDOW} in flight over {GUILDS} guilds x {CHANNELS_PER_GUILD} "
        f"channels on {SHARDS} shards), then {QUICK_RATE_N if quick else RATE_N} at a steady {RATE:g} msg/s for the "
        "latency columns; latency is from the injection to the reply reaching the fake server. Both bots send a "
        "typing indicator and one reply per message (2 REST calls), and the fake echoes each reply back over the "
        "gateway, as Discord does.",
        "CPU % is of one core (this machine has 2): a process near 100 % is the bottleneck. The fake server and "
        'the injector share the benchmark process ("fake CPU %"). Bot CPU ms/msg is the bot process only: '
        "it does not move with the fake's speed, so its ratio is the steadier measure of Parley's own cost.",
        "Parley ran with production settings (INFO logs to a file, a usage row per answer, streaming on, each "
        "guild's settings cached and re-checked once a second) on a freshly migrated database; the PostgreSQL "
        "server shares the machine's 2 cores.",
        *skipped,
    ]
    if any(r.cpu["fake"] > 85 for r in runs if r.bot == "bare"):
        notes.append(
            "The fake server was near a full core during a bare bot's run: that baseline is partly limited by the "
            "fake, so the pair's ratio flatters Parley."
        )
    for r in runs:
        if r.profile:
            notes.append(
                f"py-spy, {r.label} (share of samples, any thread, inclusive): "
                + "; ".join(f"{f} {s:.0f}%" for f, s in r.profile)
            )
    return Report("pipeline", "1. Message pipeline", tables=[main_table], goals=goals, notes=notes)


def run(quick: bool, profile: bool = False) -> Report:
    have_pg = postgres_available()
    skipped = [] if have_pg else ["PostgreSQL was not reachable at BENCH_PG_URL: its runs were skipped."]
    kinds = ["sqlite", "postgres"] if have_pg else ["sqlite"]
    plan: list[tuple[str, str, int]] = []
    pair = 0
    for kind in kinds:
        for i in range(1 if quick else PAIRS):
            pair += 1
            order = [("bare", ""), ("parley", kind)]
            plan += [(bot, k, pair) for bot, k in (order if i % 2 == 0 else order[::-1])]
    runs = []
    with Workdir("pipeline") as workdir:
        for bot, kind, number in plan:
            started = time.monotonic()
            result = (
                run_bare(workdir, number, quick, profile)
                if bot == "bare"
                else run_parley(workdir, kind, number, quick, profile)
            )
            runs.append(result)
            print(
                f"  {result.label}: {result.throughput.per_second:.0f} msg/s, "
                f"{result.throughput.cpu_ms_per_message:.2f} CPU ms/msg, "
                f"p50 {result.paced.pct(50):.1f} ms at {RATE:g}/s ({time.monotonic() - started:.0f} s)",
                flush=True,
            )
    return report(runs, quick, skipped)


if __name__ == "__main__":
    cli("pipeline", lambda quick: run(quick, profile=bool(os.environ.get("BENCH_PROFILE"))))
