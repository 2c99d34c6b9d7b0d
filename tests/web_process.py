"""Run the production web server (gunicorn with config/gunicorn.py) as a subprocess on a free port."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.bot_process import free_port
from tests.conftest import ROOT, subprocess_env


class Gunicorn:
    """The production web server (config/gunicorn.py) on a free port, logging to a file."""

    def __init__(self, **env: str) -> None:
        self.port = free_port()
        self.env = subprocess_env(**env)
        self.log = tempfile.NamedTemporaryFile(prefix="gunicorn-", suffix=".log", delete=False)  # noqa: SIM115
        command = [
            "-m",
            "gunicorn",
            "-c",
            "config/gunicorn.py",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            "1",
        ]
        self.proc = subprocess.Popen(
            [sys.executable, *command],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def get(self, path: str, **headers: str) -> tuple[int, dict[str, str]]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, dict(response.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers)

    @property
    def host(self) -> str:
        """A host name the server accepts (the first of DJANGO_ALLOWED_HOSTS)."""
        return self.env.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1").split(",")[0].strip()

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"gunicorn exited with {self.proc.returncode}:\n{self.output}")
            try:
                if self.get("/api/v1/health", Host=self.host)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"gunicorn not ready after {timeout}s:\n{self.output}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def __enter__(self) -> Gunicorn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        Path(self.log.name).unlink(missing_ok=True)
