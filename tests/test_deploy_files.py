"""The compose files and Dockerfile checked statically against the settings, and setup_secrets.sh run for real.
``make test-docker`` runs the stack on a Docker engine."""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_SOURCE = (ROOT / "config" / "settings.py").read_text()


def env_example_names() -> set[str]:
    names = set()
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"^([A-Z][A-Z0-9_]*)=", line)
        if match:
            names.add(match.group(1))
    return names


def test_env_example_documents_each_variable_with_a_comment():
    lines = (ROOT / ".env.example").read_text().splitlines()
    for index, line in enumerate(lines):
        if re.match(r"^[A-Z][A-Z0-9_]*=", line):
            assert lines[index - 1].startswith("#"), f"{line} has no comment above it"


def _read_by_settings(name: str) -> bool:
    if f'"{name}"' in SETTINGS_SOURCE:
        return True
    # *_FILE variables are read by env_secret(NAME); provider keys are read through an f-string prefix.
    base = name.removesuffix("_FILE")
    if base != name and f'env_secret("{base}")' in SETTINGS_SOURCE:
        return True
    prefix_match = re.match(r"^(OPENAI|ANTHROPIC|GEMINI|XAI)_(API_KEY|API_BASE)(_FILE)?$", name)
    return bool(prefix_match) and f'"{prefix_match.group(1)}"' in SETTINGS_SOURCE


def test_every_documented_variable_is_read_by_settings():
    unread = sorted(name for name in env_example_names() if not _read_by_settings(name))
    assert unread == []


def test_required_variables_are_documented():
    required = {
        "DISCORD_BOT_TOKEN",
        "DISCORD_CLIENT_ID",
        "DISCORD_CLIENT_SECRET",
        "TARGET_USER_ID",
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "GEMINI_API_KEY",
        "XAI_API_KEY",
        "DISCORD_API_BASE",
        "DISCORD_GATEWAY_URL",
        "BOT_HEALTH_PORT",
        "DATABASE_URL",
        "REDIS_URL",
    }
    assert required <= env_example_names()


def load_compose(name: str = "compose.yaml") -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def test_compose_services_and_healthchecks():
    compose = load_compose()
    services = compose["services"]
    assert {"web", "bot", "postgres", "redis", "migrate"} <= set(services)
    for name in ("web", "bot", "postgres", "redis"):
        assert "healthcheck" in services[name], name
    assert "/api/v1/health" in " ".join(services["web"]["healthcheck"]["test"])
    assert ":8080/health" in " ".join(services["bot"]["healthcheck"]["test"])
    assert services["bot"]["command"][-1] == "runbot"
    assert services["bot"]["environment"]["BOT_HEALTH_HOST"] == "0.0.0.0"
    assert set(compose["volumes"]) == {"postgres-data", "redis-data"}


def test_compose_env_and_secrets_agree_with_settings():
    compose = load_compose()
    documented = env_example_names()
    declared_secrets = compose["secrets"]
    setup_script = (ROOT / "setup_secrets.sh").read_text()
    for name, service in compose["services"].items():
        for variable, value in (service.get("environment") or {}).items():
            if name in {"postgres", "redis"}:
                continue
            assert variable in documented, f"{name}: {variable} is not in .env.example"
            if variable.endswith("_FILE"):
                secret = str(value).removeprefix("/run/secrets/")
                assert secret in (service.get("secrets") or []), f"{name}: {secret} not mounted"
        for secret in service.get("secrets") or []:
            assert secret in declared_secrets
    for secret, spec in declared_secrets.items():
        assert spec["file"] == f"./secrets/{secret}.txt"
        assert f"write {secret} " in setup_script, f"setup_secrets.sh does not write {secret}"


def test_dockerfile_runs_as_non_root_without_baked_secrets():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11\.\d+-slim", dockerfile, re.M)
    user_lines = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert user_lines and user_lines[-1] not in {"root", "0"}
    assert "collectstatic" in dockerfile
    assert "config/gunicorn.py" in dockerfile
    assert "uvicorn_worker.UvicornWorker" in (ROOT / "config" / "gunicorn.py").read_text()
    for secret_name in ("DISCORD_BOT_TOKEN", "OPENAI_API_KEY", "DISCORD_CLIENT_SECRET"):
        assert not re.search(rf"^(ENV|ARG)\s+{secret_name}", dockerfile, re.M)
    assert "secrets" in (ROOT / ".dockerignore").read_text().split()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_help_lists_every_target_with_a_description():
    result = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    listed = {}
    for line in result.stdout.splitlines():
        name, _, description = line.strip().partition(" ")
        listed[name] = description.strip()
    required = {"run", "test", "test-services", "up", "prod", "down", "logs", "migrate", "superuser", "bench"}
    required |= {"fake-discord", "bot-dev", "doctor", "deploy", "test-docker"}
    assert required <= set(listed), required - set(listed)
    assert all(listed.values()), [name for name, text in listed.items() if not text]
    targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.M))
    assert targets == set(listed), "every target has a ## description"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _setup_secrets(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "setup_secrets.sh"], cwd=folder, capture_output=True, text=True, timeout=30
    )


def test_setup_secrets_writes_files_the_container_user_can_read(tmp_path):
    shutil.copy(ROOT / "setup_secrets.sh", tmp_path / "setup_secrets.sh")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    # A file from an older setup_secrets.sh (mode 600): its content stays, its mode is fixed.
    (secrets / "discord_bot_token.txt").write_text("the-real-token\n")
    (secrets / "discord_bot_token.txt").chmod(0o600)
    result = _setup_secrets(tmp_path)
    assert result.returncode == 0, result.stderr
    declared = load_compose()["secrets"]
    assert sorted(path.name for path in secrets.iterdir()) == sorted(f"{name}.txt" for name in declared)
    # Compose mounts the files with their host mode and the containers do not run as their owner: 644 inside a
    # folder that only the operator can enter.
    assert _mode(secrets) == 0o700
    assert {_mode(path) for path in secrets.iterdir()} == {0o644}
    assert (secrets / "discord_bot_token.txt").read_text() == "the-real-token\n"
    assert len((secrets / "django_secret_key.txt").read_text().strip()) >= 50
    # compose.yaml's env_file needs .env to exist (docker-compose 1.29 has no `required: false`).
    assert (tmp_path / ".env").read_text() == "" and _mode(tmp_path / ".env") == 0o600
    (tmp_path / ".env").write_text("SITE_URL=https://parley.example.com\n")
    again = _setup_secrets(tmp_path)
    assert again.returncode == 0 and again.stdout == "", "a rerun writes nothing new"
    assert (tmp_path / ".env").read_text() == "SITE_URL=https://parley.example.com\n"


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_doctor_prod_runs_the_doctor_in_the_production_web_container():
    """`make doctor` checks the host's environment; a deployment is checked where it runs."""
    result = subprocess.run(
        ["make", "-n", "doctor-prod", "COMPOSE=docker compose"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert (
        "docker compose -f compose.yaml -f compose.prod.yaml run --rm --no-deps web python manage.py parley_doctor"
        in result.stdout.splitlines()
    )
