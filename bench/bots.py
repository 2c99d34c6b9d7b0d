"""Starting the two bots under test against a FakeDiscord: Parley's ``runbot`` and the bare discord.py baseline."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bench.common import Database, Workdir
from tests.fakes.discord_server import FakeDiscord
from tests.support import PYTHON, Proc, Runbot


class ParleyBot(Runbot):
    """``manage.py runbot`` with production defaults on the benchmark's database."""

    ready_timeout = 120

    def __init__(
        self,
        fake: FakeDiscord,
        workdir: Workdir,
        db: Database,
        *args: str,
        targets: Sequence[int] = (),
        **env: str,
    ) -> None:
        if targets:
            env = {"TARGET_USER_ID": ",".join(map(str, targets)), **env}
        super().__init__(fake, workdir.env(**db.env), *args, workdir=workdir.path, **env)


class BareBot(Proc):
    """``python -m bench.bare_bot``: prints JSON lines (``shard_ready``, ``ready``) to its log."""

    ready_timeout = 120

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

    def wait_ready(self, timeout: float | None = None) -> None:
        self.wait_until(self.is_ready, timeout or self.ready_timeout, "bare bot ready")
