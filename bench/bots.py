"""Starting the two bots under test against a FakeDiscord: Parley's ``runbot`` and the bare discord.py baseline."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from bench.common import PYTHON, Database, Proc, Workdir, free_port, http_get, wait_until
from tests.fakes.discord_server import FakeDiscord


class ParleyBot(Proc):
    """``manage.py runbot`` with production defaults, except no 5 s wait between IDENTIFYs (the fake allows it)."""

    def __init__(
        self,
        fake: FakeDiscord,
        workdir: Workdir,
        db: Database,
        *args: str,
        targets: Sequence[int] = (),
        **env: str,
    ) -> None:
        self.health_port = free_port()
        full_env = workdir.env(
            **db.env,
            **fake.client_env(),
            BOT_HEALTH_PORT=str(self.health_port),
            BOT_IDENTIFY_DELAY_SECONDS="0",
            **({"TARGET_USER_ID": ",".join(map(str, targets))} if targets else {}),
            **env,
        )
        super().__init__("runbot", [PYTHON, "manage.py", "runbot", *args], full_env, workdir.path)

    def health(self) -> dict[str, Any] | None:
        status, body = http_get(f"http://127.0.0.1:{self.health_port}/health", timeout=5)
        return json.loads(body) if status == 200 else None

    def wait_ready(self, timeout: float = 120) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            self.check_alive()
            return self.health()

        return wait_until(ready, timeout, "runbot /health", interval=0.1)


class BareBot(Proc):
    """``python -m bench.bare_bot``: prints JSON lines (``shard_ready``, ``ready``) to its log."""

    def __init__(
        self,
        fake: FakeDiscord,
        workdir: Workdir,
        *,
        targets: Sequence[int] = (),
        shard_count: int | None = None,
        guild_ready_timeout: float = 2.0,
    ) -> None:
        args = [PYTHON, "-m", "bench.bare_bot", "--guild-ready-timeout", str(guild_ready_timeout)]
        args += [f"--target={t}" for t in targets]
        if shard_count:
            args += ["--shard-count", str(shard_count)]
        super().__init__("bare-bot", args, workdir.env(**fake.client_env()), workdir.path)

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def is_ready(self) -> bool:
        return any(e.get("event") == "ready" for e in self.events())

    def wait_ready(self, timeout: float = 120) -> None:
        def ready() -> bool:
            self.check_alive()
            return self.is_ready()

        wait_until(ready, timeout, "bare bot ready", interval=0.05)


def settle(seconds: float) -> None:
    """Let a freshly started process finish its start-up work before it is measured."""
    time.sleep(seconds)
