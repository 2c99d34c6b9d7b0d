"""What every benchmark shares: process statistics, throwaway databases and the profiler. Child processes,
ports and polling come from tests/support.py, which the tests use too.

The benchmark processes themselves never import Django: anything that needs the ORM runs in a child process
(``bench.tasks``) with the environment of the database under test, so one run can measure SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tests.support import PYTHON, ROOT

PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Variables of the developer's shell that would change what is measured (a real provider, another database).
_STRIPPED = (
    "DATABASE_URL",
    "REDIS_URL",
    "SQLITE_PATH",
    "TARGET_USER_ID",
    "DJANGO_DEBUG",
    "LLM_DEFAULT_MODEL",
)


# ---------------------------------------------------------------- processes
def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (peak RSS) and friends from /proc/<pid>/status, in KiB."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.startswith("Vm") and value.strip().endswith("kB"):
                out[key] = int(value.split()[0])
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return sorted(found)


# ---------------------------------------------------------------- environment and databases
class Workdir:
    """A throwaway directory under /tmp for logs, SQLite files and PARLEY_VAR_DIR; removed at the end."""

    def __init__(self, label: str) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=f"parley-bench-{label}-", dir="/tmp"))
        self.secret_key = secrets.token_urlsafe(48)
        self.keep = bool(os.environ.get("BENCH_KEEP"))

    def env(self, **overrides: str) -> dict[str, str]:
        """A child's environment: the embedded defaults plus ``overrides``, nothing from a developer's .env."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in _STRIPPED and not k.startswith(("DISCORD_", "BOT_"))
        }
        for key in list(env):
            if key.endswith(("_API_KEY", "_API_BASE", "_API_KEY_FILE")):
                env.pop(key)
        env.update(
            DJANGO_SETTINGS_MODULE="config.settings",
            PARLEY_VAR_DIR=str(self.path / "var"),
            PARLEY_ENV_FILE="",  # the settings would read .env for what the environment lacks
            DJANGO_SECRET_KEY=self.secret_key,  # the same in every child: sessions made by one are valid in another
            LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
        )
        env.update(overrides)
        return env

    def cleanup(self) -> None:
        if not self.keep:
            shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> Workdir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def postgres_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(f"{PG_URL}/postgres", connect_timeout=3):
            return True
    except Exception:
        return False


def redis_available() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping())
    except Exception:
        return False


@dataclasses.dataclass
class Database:
    """A freshly migrated database that exists only for one benchmark run."""

    kind: str  # "sqlite" or "postgres"
    name: str
    env: dict[str, str]

    @property
    def label(self) -> str:
        return "SQLite" if self.kind == "sqlite" else "PostgreSQL"

    def drop(self) -> None:
        if self.kind == "postgres":
            import psycopg

            with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(self.name + suffix).unlink(missing_ok=True)

    def count(self, sql: str) -> int:
        """One integer from the database, read without Django (the bench process never imports it)."""
        if self.kind == "postgres":
            import psycopg

            with psycopg.connect(self.env["DATABASE_URL"], autocommit=True) as conn:
                row = conn.execute(sql).fetchone()
        else:
            import sqlite3

            conn = sqlite3.connect(self.name, timeout=20)
            try:
                row = conn.execute(sql).fetchone()
            finally:
                conn.close()
        return int(row[0]) if row else 0

    def backend_pids(self) -> list[int]:
        """PostgreSQL server processes serving this database (their CPU is part of Parley's cost)."""
        if self.kind != "postgres":
            return []
        import psycopg

        with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
            rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [self.name]).fetchall()
        return [int(r[0]) for r in rows]


def create_database(kind: str, workdir: Workdir) -> Database:
    if kind == "postgres":
        import psycopg

        name = f"parley_bench_{os.getpid()}_{secrets.token_hex(3)}"
        with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        db = Database("postgres", name, {"DATABASE_URL": f"{PG_URL}/{name}"})
    else:
        path = workdir.path / f"parley-{secrets.token_hex(3)}.sqlite3"
        db = Database("sqlite", str(path), {"SQLITE_PATH": str(path)})
    try:
        result = subprocess.run(
            [PYTHON, "manage.py", "migrate", "--noinput", "-v0"],
            cwd=ROOT,
            env=workdir.env(**db.env),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode:
            raise RuntimeError(f"migrate failed on {db.label}:\n{result.stdout}{result.stderr}")
    except BaseException:
        db.drop()
        raise
    return db


@contextlib.contextmanager
def database(kind: str, workdir: Workdir) -> Iterator[Database]:
    db = create_database(kind, workdir)
    try:
        yield db
    finally:
        db.drop()


def django_task(env: dict[str, str], name: str, timeout: float = 600, **kwargs: Any) -> Any:
    """Run ``bench.tasks.<name>(**kwargs)`` in a fresh Django process with ``env``; returns its JSON result."""
    result = subprocess.run(
        [PYTHON, "-m", "bench.tasks", name, json.dumps(kwargs)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if result.returncode or not lines:
        raise RuntimeError(
            f"bench task {name} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return json.loads(lines[-1][len("RESULT ") :])


# ---------------------------------------------------------------- profiling
def py_spy(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    """Start ``py-spy record`` on ``pid`` (raw collapsed stacks); None when py-spy is not installed."""
    exe = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
    if not Path(exe).exists():
        return None
    return subprocess.Popen(
        [
            exe,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(math.ceil(seconds)),
            "--rate",
            "200",
            "--format",
            "raw",
            "--threads",
            "--nonblocking",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def profile_summary(collapsed: Path, top: int = 12, focus: Sequence[str] = ()) -> list[tuple[str, float]]:
    """Share of samples (all threads) in which each function appears anywhere on the stack, largest first.

    ``focus`` keeps only frames whose text contains one of the given strings (e.g. our packages' paths).
    """
    if not collapsed.exists():
        return []
    counts: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        total += int(n)
        # One entry per function, whichever line of it was running.
        for frame in {re.sub(r":\d+\)$", ")", f) for f in stack.split(";")}:
            if not focus or any(f in frame for f in focus):
                counts[frame] = counts.get(frame, 0) + int(n)
    ranked = sorted(counts.items(), key=lambda item: -item[1])[:top]
    return [(frame, 100 * n / total) for frame, n in ranked] if total else []
