"""gunicorn settings for the benchmarks only (``-c bench/gunicorn_conf.py``), beside the command-line flags.

Each worker keeps a small JSON file up to date (every half second, from a daemon thread): its pid, peak and
current RSS, and the ``litellm`` modules it has imported. That is the proof the web process never loads the LLM
library, read from inside the worker. (An exit hook would not do: uvicorn re-raises SIGTERM once it has shut
down, so the worker dies by the signal before gunicorn's ``worker_exit`` runs.)
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

control_socket_disable = True  # parallel servers must not share ~/.gunicorn/gunicorn.ctl
accesslog = None


def post_fork(server: Any, worker: Any) -> None:
    if os.environ.get("BENCH_WORKER_REPORT_DIR"):
        threading.Thread(target=_report_forever, name="bench-report", daemon=True).start()


def post_worker_init(worker: Any) -> None:
    if os.environ.get("BENCH_LLM_INLINE"):
        # The baseline of bench.live: provider calls made inside the worker, as before llm.runner existed.
        from llm import providers

        providers.run_inline()


def _report_forever() -> None:
    while True:
        _report()
        time.sleep(0.5)


def _report() -> None:
    out = os.environ["BENCH_WORKER_REPORT_DIR"]
    status = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            status[key] = int(value.split()[0])
    report = {
        "pid": os.getpid(),
        "litellm": sorted(m for m in sys.modules if m == "litellm" or m.startswith("litellm.")),
        "modules": len(sys.modules),
        **status,
    }
    path = Path(out, f"worker-{os.getpid()}.json")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report))
    tmp.replace(path)  # never a half-written file
