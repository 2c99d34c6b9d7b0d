"""Run every benchmark, print their tables, and rewrite docs/BENCHMARKS.md (``make bench``).

    python -m bench.run_all                  # all seven, then rewrite docs/BENCHMARKS.md
    python -m bench.run_all --quick          # a smoke test of all seven (does not touch the docs)
    python -m bench.run_all --only pipeline,streaming

Each benchmark runs in its own process (a clean interpreter, nothing left over from the previous one) and hands
back its report as JSON. The hand-written analysis at the end of docs/BENCHMARKS.md, below ANALYSIS_MARKER, is
kept as it is; everything above it is regenerated.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.report import Goal, Report, goal_table, machine
from tests.support import PYTHON, ROOT

BENCHMARKS = [
    ("pipeline", "1. Message pipeline"),
    ("startup", "2. Start-up at scale"),
    ("dashboard", "3. Dashboard"),
    ("streaming", "4. Streaming"),
    ("web_memory", "5. Web worker memory"),
    ("live", "6. Real time"),
    ("shards", "7. Shards that place themselves"),
]
DOC = ROOT / "docs" / "BENCHMARKS.md"
ANALYSIS_MARKER = "<!-- Everything below this line is written by hand and kept by bench.run_all. -->"
TIMEOUT = 30 * 60
FAILED = "(benchmark failed)"
BUDGET = 15 * 60  # make bench should take less than this on the 2-core machine


def run_one(key: str, title: str, quick: bool, tmp: Path) -> Report:
    out = tmp / f"{key}.json"
    args = [PYTHON, "-m", f"bench.{key}", "--json", str(out)] + (["--quick"] if quick else [])
    load = os.getloadavg()[0]
    started = time.monotonic()
    print(f"\n=== {title} (load average {load:.2f}) ===", flush=True)
    try:
        result = subprocess.run(args, cwd=ROOT, timeout=TIMEOUT)
        failed = result.returncode != 0 or not out.exists()
        reason = f"exited with {result.returncode}"
    except subprocess.TimeoutExpired:
        failed, reason = True, f"did not finish within {TIMEOUT // 60} minutes"
    if failed:
        report = Report(
            key, title, notes=[f"**The benchmark failed** ({reason}); see the output of `make bench`."]
        )
        report.goals = [Goal(FAILED, "", "", "", "", None)]
    else:
        report = Report.from_json(json.loads(out.read_text()))
    report.seconds = time.monotonic() - started
    report.notes.append(f"Load average (1 min) when it started: {load:.2f} on {os.cpu_count()} cores.")
    return report


def document(reports: list[Report], info: dict[str, object], total: float) -> str:
    goals: list[tuple[str, Goal]] = [(r.title, g) for r in reports for g in r.goals]
    summary = goal_table([g for _, g in goals]).splitlines()
    # the benchmark's name as a first column
    header, rule, *rows = summary
    rows = [f"| {title} {row}" for (title, _), row in zip(goals, rows, strict=True)]
    lines = [
        "# Benchmarks",
        "",
        "_Written by `make bench` (`python -m bench.run_all`): the tables are the real output of its last run. "
        "Every figure was measured in the same run as its baseline, on the same machine; read the ratios, not the "
        "absolute times (other work on a shared machine moves both)._",
        "",
        f"Machine: {info['cores']} cores ({info['cpu']}), {info['memory_gib']} GiB memory, Python {info['python']}. "
        f"Run: {info['date']}, commit {info['commit']}, {total / 60:.1f} minutes in all.",
        "",
        "## Goals",
        "",
        "| benchmark " + header,
        "| --- " + rule,
        *rows,
        "",
        "Each benchmark also runs alone: `python -m bench.<name> [--quick]` (pipeline, startup, dashboard, streaming, "
        "web_memory, live, shards); `BENCH_PROFILE=1` adds a py-spy profile of Parley to the pipeline and start-up runs, "
        "`BENCH_KEEP=1` keeps the logs and profiles under /tmp/parley-bench-*.",
    ]
    for report in reports:
        lines += ["", report.markdown(level=2)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run_all")
    parser.add_argument("--quick", action="store_true", help="small runs; docs/BENCHMARKS.md is left alone")
    parser.add_argument("--only", default="", help="comma-separated names (pipeline,startup,...)")
    parser.add_argument(
        "--write", action="store_true", help="rewrite docs/BENCHMARKS.md even with --quick/--only"
    )
    args = parser.parse_args()
    wanted = {name.strip() for name in args.only.split(",") if name.strip()}
    unknown = wanted - {key for key, _ in BENCHMARKS}
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    info = machine()
    print(
        f"{info['cores']} cores, {info['memory_gib']} GiB, {info['cpu']}; {info['date']}; commit {info['commit']}"
    )
    started = time.monotonic()
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"parley-bench-results-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    reports = [
        run_one(key, title, args.quick, tmp) for key, title in BENCHMARKS if not wanted or key in wanted
    ]
    total = time.monotonic() - started
    text = document(reports, info, total)
    print("\n" + "\n".join(text.splitlines()[: 14 + len([g for r in reports for g in r.goals])]))
    for report in reports:
        for goal in report.goals:
            if goal.met is False:
                print(f"MISSED: {report.title}: {goal.measure}: {goal.figure} (goal {goal.target})")
    print(f"\nAll benchmarks took {total / 60:.1f} minutes.")
    if total > BUDGET and not args.quick:
        print(f"WARNING: over the {BUDGET // 60}-minute budget (a loaded machine?): see the load averages.")
    if (not args.quick and not wanted) or args.write:
        previous = DOC.read_text() if DOC.exists() else ""
        analysis = previous.split(ANALYSIS_MARKER, 1)[1] if ANALYSIS_MARKER in previous else "\n"
        DOC.parent.mkdir(parents=True, exist_ok=True)
        DOC.write_text(text + "\n" + ANALYSIS_MARKER + analysis)
        print(f"Wrote {DOC.relative_to(ROOT)}.")
    for path in tmp.glob("*.json"):
        path.unlink()
    tmp.rmdir()
    failed = [r.title for r in reports if any(g.measure == FAILED for g in r.goals)]
    if failed:
        print("FAILED: " + ", ".join(failed) + " could not run.")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
