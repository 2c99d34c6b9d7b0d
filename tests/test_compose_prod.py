"""compose.yaml with and without compose.prod.yaml, merged the way ``docker compose -f ... -f ...`` merges them,
checked against the settings, .env.example, the management commands and the Dockerfile, and against what
docker-compose 1.29 accepts (and its own ``config`` where it is installed). The container healthcheck is run for
real against the production web server and a bot. ``make test-docker`` runs the stack itself on a Docker engine."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import get_commands, load_command_class

from botcore.bot import DRAIN_AFTER_CANCEL_SECONDS
from botcore.management.commands.runbot import parse_shard_ids
from tests.fakes.discord_server import FakeDiscord
from tests.support import ROOT, BotProcess, WebProcess
from tests.test_deploy_files import _read_by_settings, env_example_names

APP_SERVICES = {"migrate", "web", "bot", "bot-a", "bot-b"}
LONG_RUNNING = {"web", "bot", "bot-a", "bot-b", "postgres", "redis"}
# What the operator puts in .env for production (compose.prod.yaml refuses to start without them).
PROD_ENV = {
    "SITE_URL": "https://parley.example.com",
    "DJANGO_ALLOWED_HOSTS": "parley.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://parley.example.com",
}
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?:(?P<op>:-|:\?)(?P<arg>[^}]*))?\}")


class MissingVariable(Exception):
    pass


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ``${NAME}``, ``${NAME:-default}`` and ``${NAME:?error}``."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if env.get(name):
            return env[name]
        if op == ":?":
            raise MissingVariable(f"{name}: {arg}")
        return arg or ""

    return _VARIABLE.sub(replace, value)


def merge(base: Any, override: Any, key: str = "") -> Any:
    """Compose's merge: mappings by key, secrets/volumes/ports appended, anything else replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for name, value in override.items():
            merged[name] = merge(base[name], value, name) if name in base else copy.deepcopy(value)
        return merged
    if key in {"secrets", "volumes", "ports"} and isinstance(base, list) and isinstance(override, list):
        return base + [item for item in override if item not in base]
    return copy.deepcopy(override)


def load(*files: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    project: dict[str, Any] = {}
    for name in files:
        # safe_load resolves the YAML anchors and `<<` merge keys that the services share.
        project = merge(project, yaml.safe_load((ROOT / name).read_text()))
    return interpolate(project, env if env is not None else {})


@pytest.fixture(scope="module")
def dev() -> dict[str, Any]:
    return load("compose.yaml")


@pytest.fixture(scope="module")
def prod() -> dict[str, Any]:
    return load("compose.yaml", "compose.prod.yaml", env=PROD_ENV)


@pytest.fixture(params=["dev", "prod"])
def project(request, dev, prod) -> dict[str, Any]:
    return {"dev": dev, "prod": prod}[request.param]


def app_services(project: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in project["services"].items() if name in APP_SERVICES}


def test_production_adds_no_service_and_the_sharded_bots_wait_for_their_profile(dev, prod):
    assert set(prod["services"]) == set(dev["services"])
    for project in (dev, prod):
        services = project["services"]
        assert "profiles" not in services["bot"]
        for name in ("bot-a", "bot-b"):
            assert services[name]["profiles"] == ["sharded"], name
            assert services[name]["depends_on"] == services["bot"]["depends_on"], name
            assert services[name]["secrets"] == services["bot"]["secrets"], name


def test_published_addresses_are_local(project):
    published = {name: service.get("ports", []) for name, service in project["services"].items()}
    assert published["web"] == ["127.0.0.1:8000:8000"]
    assert published["bot"] == ["127.0.0.1:8080:8080"]
    assert published["bot-a"] == ["127.0.0.1:8081:8080"] and published["bot-b"] == ["127.0.0.1:8082:8080"]
    assert published["postgres"] == published["redis"] == published["migrate"] == []


# What docker-compose 1.29 (Debian's package) accepts; Compose v2 takes all of it too.
COMPOSE_1_29_TOP_LEVEL = {"version", "services", "volumes", "secrets", "networks", "configs"}
DEPENDS_ON_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


@pytest.mark.parametrize("name", ["compose.yaml", "compose.prod.yaml", "tests/docker/compose.test.yaml"])
def test_the_files_stay_within_docker_compose_1_29(name):
    raw = yaml.safe_load((ROOT / name).read_text())
    assert {key for key in raw if not key.startswith("x-")} <= COMPOSE_1_29_TOP_LEVEL, name
    for service_name, service in raw["services"].items():
        where = f"{name}: {service_name}"
        assert "extends" not in service, f"{where}: 1.29 refuses extends of a service with depends_on"
        env_files = service.get("env_file", [])
        for entry in [env_files] if isinstance(env_files, str) else env_files:
            assert isinstance(entry, str), f"{where}: 1.29 knows no env_file path/required"
        for dependency in (service.get("depends_on") or {}).values():
            assert dependency["condition"] in DEPENDS_ON_CONDITIONS, where
        if service.get("network_mode") == "host":
            assert name.startswith("tests/"), f"{where}: host networking is for the test machines only"
        for secret in service.get("secrets", []):
            assert isinstance(secret, str), f"{where}: uid/gid/mode do nothing for file secrets"


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


@pytest.mark.skipif(_compose_command() is None, reason="no `docker compose` and no docker-compose")
@pytest.mark.parametrize(
    "files", [["compose.yaml"], ["compose.yaml", "compose.prod.yaml"]], ids=["dev", "prod"]
)
def test_compose_itself_accepts_the_files(tmp_path: Path, files: list[str]):
    for name in files:
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / ".env").write_text("")
    command = [*(_compose_command() or []), *[arg for name in files for arg in ("-f", name)]]
    environment = {"PATH": os.environ["PATH"], **PROD_ENV}
    result = subprocess.run(
        [*command, "--profile", "sharded", "config"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    merged = yaml.safe_load(result.stdout)
    assert set(merged["services"]) == {"migrate", "web", "bot", "bot-a", "bot-b", "postgres", "redis"}
    after_migrate = merged["services"]["bot-a"]["depends_on"]["migrate"]["condition"]
    assert after_migrate == "service_completed_successfully"


def test_the_docker_test_override_keeps_everything_on_the_loopback():
    override = yaml.safe_load((ROOT / "tests/docker/compose.test.yaml").read_text())
    services = override["services"]
    assert set(services) == {"migrate", "web", "bot", "postgres", "redis"}
    assert all(service["network_mode"] == "host" for service in services.values())
    assert override["networks"]["default"] == {"external": True, "name": "host"}, "no bridge network"
    for name in ("migrate", "web", "bot"):
        environment = services[name]["environment"]
        assert environment["DATABASE_URL"] == "postgres://parley@127.0.0.1:55432/parley", name
        assert environment["REDIS_URL"] == "redis://127.0.0.1:56379/0", name
        assert environment["DISCORD_API_BASE"].startswith("http://127.0.0.1:"), name
        assert services[name]["build"]["network"] == "host", name
    web, bot = services["web"], services["bot"]
    assert web["command"][-2:] == ["--bind", "127.0.0.1:18000"]
    assert web["healthcheck"]["test"][-1] == "http://127.0.0.1:18000/api/v1/health"
    assert bot["environment"]["BOT_HEALTH_HOST"] == "127.0.0.1"
    health_port = bot["environment"]["BOT_HEALTH_PORT"]
    assert bot["healthcheck"]["test"][-1] == f"http://127.0.0.1:{health_port}/health"
    assert "listen_addresses=127.0.0.1" in services["postgres"]["command"]
    assert "55432" in services["postgres"]["healthcheck"]["test"][-1]
    assert services["redis"]["command"][-4:] == ["--bind", "127.0.0.1", "--port", "56379"]


def test_production_refuses_to_start_without_site_url_and_hosts():
    for name in PROD_ENV:
        with pytest.raises(MissingVariable, match=name):
            load("compose.yaml", "compose.prod.yaml", env={k: v for k, v in PROD_ENV.items() if k != name})


def test_every_service_command_runs_something_that_exists(project):
    commands = get_commands()
    for name, service in app_services(project).items():
        command = service["command"]
        if command[0] == "gunicorn":
            config = command[command.index("-c") + 1]
            assert (ROOT / config).is_file(), f"{name}: {config}"
            module, attribute = command[command.index("-c") + 2].split(":")
            assert f"{attribute} = " in (ROOT / (module.replace(".", "/") + ".py")).read_text()
            assert 'worker_class = "uvicorn_worker.UvicornWorker"' in (ROOT / config).read_text()
            continue
        assert command[:2] == ["python", "manage.py"], f"{name}: {command}"
        assert command[2] in commands, f"{name}: no management command {command[2]}"
        parser = load_command_class(commands[command[2]], command[2]).create_parser("manage.py", command[2])
        parser.parse_args(command[3:])  # exits on an unknown option


def bot_shards(service: dict[str, Any]) -> tuple[int | None, list[int] | None]:
    options = service["command"][3:]
    count = int(options[options.index("--shard-count") + 1]) if "--shard-count" in options else None
    ids = parse_shard_ids(options[options.index("--shard-ids") + 1]) if "--shard-ids" in options else None
    return count, ids


def test_sharded_bots_share_the_count_and_split_the_ids(prod):
    (count_a, ids_a), (count_b, ids_b) = (bot_shards(prod["services"][name]) for name in ("bot-a", "bot-b"))
    assert count_a == count_b == 4
    assert set(ids_a).isdisjoint(ids_b)
    assert sorted(ids_a + ids_b) == list(range(count_a))
    assert bot_shards(prod["services"]["bot"]) == (None, None), "the single bot runs every shard"


def test_bots_get_longer_to_stop_than_their_answers_get_to_finish(prod):
    bots = {name: s for name, s in prod["services"].items() if "runbot" in str(s.get("command", ""))}
    assert len(bots) >= 3, "the bot and the two sharded bots"
    # runbot's worst case after SIGTERM: the grace, 5 s for interrupted answers to mark their messages, 2 s to
    # close the gateway, then the last usage write and the shard status write, each up to the pool's timeout.
    pool_timeout = 5.0
    for name, service in bots.items():
        grace = float(service["environment"]["BOT_SHUTDOWN_GRACE_SECONDS"])
        worst = grace + DRAIN_AFTER_CANCEL_SECONDS + 2 + 2 * pool_timeout
        assert _seconds(service["stop_grace_period"]) > worst, name


def _seconds(duration: str) -> float:
    return float(duration.removesuffix("s")) if duration.endswith("s") else float(duration)


def test_env_and_secrets_agree_with_settings_and_env_example(project):
    documented = env_example_names()
    declared = project["secrets"]
    used_secrets = set()
    for name, service in app_services(project).items():
        environment = service["environment"]
        for variable, value in environment.items():
            assert variable in documented, f"{name}: {variable} is not in .env.example"
            assert _read_by_settings(variable), f"{name}: settings never read {variable}"
            if variable.endswith("_FILE"):
                secret = str(value).removeprefix("/run/secrets/")
                assert secret in service["secrets"], f"{name}: {variable} points at unmounted {secret}"
                used_secrets.add(secret)
        for secret in service["secrets"]:
            assert secret in declared, f"{name}: secret {secret} is not declared"
            assert any(str(v) == f"/run/secrets/{secret}" for v in environment.values()), (
                f"{name}: secret {secret} is mounted but no *_FILE variable reads it"
            )
        # Secrets travel as files only: no secret value in the compose environment.
        for variable in (
            "DJANGO_SECRET_KEY",
            "DISCORD_BOT_TOKEN",
            "DISCORD_CLIENT_SECRET",
            "DATABASE_PASSWORD",
        ):
            assert variable not in environment, f"{name}: {variable} set inline; use {variable}_FILE"
        assert "password" not in environment["DATABASE_URL"].split("@")[0].partition("//")[2]
    assert used_secrets == set(declared), "every declared secret is read by some service"


def test_production_turns_debug_off_and_https_on(prod):
    for name, service in app_services(prod).items():
        environment = service["environment"]
        assert environment["DJANGO_DEBUG"] == "false", name
        assert environment["DJANGO_SECURE"] == "true", name
        assert environment["DJANGO_BEHIND_PROXY"] == "true", name
        assert environment["LOG_FORMAT"] == "json", name
        assert {k: environment[k] for k in PROD_ENV} == PROD_ENV, name


def test_production_restarts_limits_and_rotates_logs(prod):
    for name, service in prod["services"].items():
        expected_restart = "unless-stopped" if name in LONG_RUNNING else "no"
        assert service["restart"] == expected_restart, name
        limits = service["deploy"]["resources"]["limits"]
        assert limits["memory"] and float(limits["cpus"]) > 0, name
        assert service["logging"]["options"]["max-size"], name
        if name in APP_SERVICES - {"migrate"}:
            assert service["healthcheck"]["start_period"], f"{name}: give it time to start before it counts"


def test_no_source_or_host_mounts(project):
    for name, service in project["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            assert source in project["volumes"], f"{name} mounts {source} from the host"


def test_healthchecks_probe_the_health_endpoints(project):
    for name, service in app_services(project).items():
        if name == "migrate":
            continue
        test = service["healthcheck"]["test"]
        assert test[:4] == ["CMD", "python", "-m", "config.healthcheck"], name
        expected = "http://127.0.0.1:8000/api/v1/health" if name == "web" else "http://127.0.0.1:8080/health"
        assert test[4] == expected, name
        if name.startswith("bot"):
            assert service["environment"]["BOT_HEALTH_HOST"] == "0.0.0.0", name
    assert "healthcheck" in project["services"]["postgres"] and "healthcheck" in project["services"]["redis"]


def test_images_are_pinned(project):
    for name, service in project["services"].items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag, f"{name}: {image} has no tag"
        if name in APP_SERVICES:
            assert repository == "parley", name
        else:
            assert tag != "latest" and re.match(r"^\d+", tag), f"{name}: {image} is not pinned to a version"
    assert load("compose.yaml", env={"PARLEY_TAG": "abc123"})["services"]["web"]["image"] == "parley:abc123"


# --- Dockerfile: the hadolint rules that matter ------------------------------------------------------------------
DOCKERFILE = (ROOT / "Dockerfile").read_text()
INSTRUCTIONS = [
    line.strip()
    for line in re.sub(r"\\\n\s*", " ", DOCKERFILE).splitlines()
    if line.strip() and not line.startswith("#")
]


def test_dockerfile_base_image_is_an_exact_tag():
    [base] = [line for line in INSTRUCTIONS if line.startswith("FROM ")]
    image = base.split()[1]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+", image), (
        image
    )  # DL3006/DL3007: no latest, no bare tag


def test_dockerfile_runs_as_a_user_that_owns_only_var():
    users = [line.split()[1] for line in INSTRUCTIONS if line.startswith("USER ")]
    assert users and users[-1] not in {"root", "0"}  # DL3002
    assert "--chown" not in DOCKERFILE, "the code stays owned by root, read-only for the app user"
    assert "chown parley:parley /app/var" in DOCKERFILE


def test_dockerfile_bakes_in_no_secrets():
    for line in INSTRUCTIONS:
        if line.startswith(("ENV ", "ARG ", "LABEL ")):
            assert not re.search(r"(TOKEN|SECRET|PASSWORD|API_KEY)\b", line.upper()), line
    assert not [line for line in INSTRUCTIONS if line.startswith("ADD ")], "COPY, not ADD (DL3020)"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", "secrets", ".git", "var"} <= set(ignored)


def test_dockerfile_command_is_exec_form_and_pip_keeps_no_cache():
    [cmd] = [line for line in INSTRUCTIONS if line.startswith("CMD ")]
    assert cmd.startswith('CMD ["gunicorn", "-c", "config/gunicorn.py"')  # DL3025
    assert "PIP_NO_CACHE_DIR=1" in DOCKERFILE  # DL3042


# --- The healthcheck command, for real ---------------------------------------------------------------------------
def healthcheck(url: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "config.healthcheck", url],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.django_db(transaction=True)
def test_web_healthcheck_passes_with_production_settings():
    production = {
        **PROD_ENV,
        "DJANGO_DEBUG": "false",
        "DJANGO_SECURE": "true",
        "DJANGO_BEHIND_PROXY": "true",
        "DJANGO_SECRET_KEY": "healthcheck-test-secret-key-0123456789abcdefghijklmnop",
    }
    with WebProcess(**production) as server:
        server.wait_ready()
        # A bare probe is refused: 127.0.0.1 is not an allowed host.
        assert server.get("/api/v1/health")[0] == 400
        url = f"http://127.0.0.1:{server.port}/api/v1/health"
        probe = healthcheck(url, DJANGO_ALLOWED_HOSTS="parley.example.com")
        assert probe.returncode == 0, probe.stdout + probe.stderr + server.log()
        assert healthcheck(url, DJANGO_ALLOWED_HOSTS="elsewhere.example.com").returncode == 1


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_bot_healthcheck_follows_the_gateway():
    with FakeDiscord(heartbeat_interval_ms=500) as fake, BotProcess(fake) as bot:
        bot.wait_ready()
        assert healthcheck(f"http://127.0.0.1:{bot.health_port}/health").returncode == 0
    assert healthcheck(f"http://127.0.0.1:{bot.health_port}/health").returncode == 1
    assert healthcheck("http://example.com/health").returncode == 1
