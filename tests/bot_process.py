"""Run ``manage.py runbot`` as a real subprocess against the local fake Discord server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, subprocess_env
from tests.fakes.discord_server import FakeDiscord


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BotProcess:
    """One ``runbot`` process; ``logs`` holds what it printed once stopped."""

    def __init__(self, fake: FakeDiscord, *args: str, **env: str) -> None:
        self.health_port = free_port()
        self.args = args
        self.env = subprocess_env(
            **{
                **fake.client_env(),
                "BOT_HEALTH_PORT": str(self.health_port),
                "BOT_IDENTIFY_DELAY_SECONDS": "0",
                "BOT_GUILD_READY_TIMEOUT": "0.2",
                "BOT_STATUS_INTERVAL_SECONDS": "0.5",
                # Tests change settings through the ORM and send at once; the default (1 s) has its own test.
                "BOT_SETTINGS_RECHECK_SECONDS": "0",
                "LOG_LEVEL": "INFO",
                **env,
            }
        )
        self._log_file = tempfile.NamedTemporaryFile(prefix="runbot-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> BotProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "runbot", *self.args],
            cwd=ROOT,
            env=self.env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        return self

    def health(self) -> tuple[int, dict[str, Any]] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/health", timeout=2) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())
        except OSError:
            return None

    def wait_ready(self, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"runbot exited with {self.proc.returncode}:\n{self.logs}")
            result = self.health()
            if result and result[0] == 200:
                return result[1]
            time.sleep(0.1)
        raise AssertionError(f"runbot not ready after {timeout}s: {self.health()}\n{self.logs}")

    def stop(self, timeout: float = 15) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    @property
    def logs(self) -> str:
        return Path(self._log_file.name).read_text(errors="replace")

    def __enter__(self) -> BotProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        os.unlink(self._log_file.name)
