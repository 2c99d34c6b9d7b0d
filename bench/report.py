"""Statistics, the machine's description and the report every benchmark returns (Markdown tables, goals)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import platform
import subprocess
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.support import ROOT


# ---------------------------------------------------------------- statistics
def percentile(values: Sequence[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline else math.nan


def fmt(value: float | None, digits: int = 0, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    text = f"{value:,.{digits}f}"
    return f"{text} {unit}".rstrip()


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.2f}x"


# ---------------------------------------------------------------- machine
def machine() -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text()
    total_kb = int(next(line.split()[1] for line in meminfo.splitlines() if line.startswith("MemTotal:")))
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    commit = "unknown"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        commit += " with uncommitted changes" if dirty else ""
    return {
        "cores": os.cpu_count() or 1,
        "memory_gib": round(total_kb / 1024 / 1024, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
    }


# ---------------------------------------------------------------- reports
@dataclasses.dataclass
class Goal:
    measure: str  # "throughput, SQLite"
    figure: str  # Parley's value, formatted
    baseline: str  # the baseline's value, formatted
    ratio: str  # "0.93x", or "" when the goal is not a ratio
    target: str  # "≥ 0.8x bare bot"
    met: bool | None  # None: not measured (skipped), or a figure reported without a goal (info=True)
    note: str = ""
    info: bool = False

    @property
    def verdict(self) -> str:
        if self.info:
            return "(no goal)"
        return "not measured" if self.met is None else ("met" if self.met else "**missed**")


@dataclasses.dataclass
class Report:
    key: str  # "pipeline"
    title: str  # "Message pipeline"
    tables: list[str] = dataclasses.field(default_factory=list)
    goals: list[Goal] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    quick: bool = False

    def markdown(self, level: int = 2) -> str:
        head = "#" * level
        parts = [f"{head} {self.title}"]
        if self.goals:
            parts.append(goal_table(self.goals))
        parts.extend(self.tables)
        if self.notes:
            parts.append("\n".join(f"- {note}" for note in self.notes))
        parts.append(f"_{'quick mode, ' if self.quick else ''}took {self.seconds:.0f} s._")
        return "\n\n".join(parts)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Report:
        goals = [Goal(**g) for g in data.pop("goals", [])]
        return cls(goals=goals, **data)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def goal_table(goals: Sequence[Goal], benchmark: str = "") -> str:
    headers = ["measure", "Parley", "baseline", "ratio", "goal", "result"]
    rows = [[g.measure, g.figure, g.baseline, g.ratio or "", g.target, g.verdict] for g in goals]
    if benchmark:
        headers.insert(0, "benchmark")
        rows = [[benchmark, *row] for row in rows]
    return table(headers, rows)


def cli(key: str, run: Callable[[bool], Report]) -> None:
    """The command line every benchmark shares: ``--quick`` for a smoke test, ``--json`` for run_all."""
    parser = argparse.ArgumentParser(prog=f"python -m bench.{key}")
    parser.add_argument("--quick", action="store_true", help="a small, fast run to check the benchmark works")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here (for bench.run_all)")
    args = parser.parse_args()
    started = time.monotonic()
    try:
        report = run(args.quick)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    report.seconds = time.monotonic() - started
    report.quick = args.quick
    print(report.markdown(), flush=True)
    for goal in report.goals:
        if goal.met is False:
            print(f"MISSED: {goal.measure}: {goal.figure} ({goal.ratio or 'absolute'}; goal {goal.target})")
    if args.json:
        args.json.write_text(json.dumps(report.to_json()))
