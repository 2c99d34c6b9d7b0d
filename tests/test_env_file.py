""".env: every Python entry point reads it through the settings (manage.py, the servers, ``make doctor``), and
scripts/run.sh through ``python -m config.env``; a variable set in the environment wins. PARLEY_ENV_FILE names
another file, or none when empty: the tests run with none (pytest-env, pyproject.toml)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import env_file_path
from tests.support import ROOT, run_python

SECRET_KEY = "env-file-secret-key-0123456789-abcdefghijklmnop"


def environment(tmp_path: Path, env_file: Path | None, **env: str) -> dict[str, str]:
    """This process's environment without the services, SITE_URL or a secret key, with ``env_file`` as .env."""
    cleared = {"DATABASE_URL", "REDIS_URL", "SITE_URL", "PORT", "LOG_FORMAT", "DJANGO_SECRET_KEY"}
    base = {k: v for k, v in os.environ.items() if k not in cleared}
    base.update(
        PARLEY_VAR_DIR=str(tmp_path),
        DJANGO_SETTINGS_MODULE="config.settings",
        PARLEY_ENV_FILE=str(env_file) if env_file else "",
        **env,
    )
    return base


def settings_of(tmp_path: Path, env_file: Path | None, *names: str, **env: str) -> dict[str, object]:
    code = f"import json; from django.conf import settings; print(json.dumps({{n: str(getattr(settings, n)) for n in {names!r}}}))"
    result = run_python(code, environment(tmp_path, env_file, **env))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def write_env(tmp_path: Path, text: str) -> Path:
    path = tmp_path / ".env"
    path.write_text(text)
    return path


def test_the_tests_read_no_env_file():
    from django.conf import settings

    assert os.environ["PARLEY_ENV_FILE"] == ""
    assert settings.ENV_FILE is None


def test_settings_read_the_env_file_and_the_environment_wins(tmp_path):
    env_file = write_env(
        tmp_path,
        "# a comment\nLOG_FORMAT=json\nSITE_URL=https://from-the-file.example.com\n"
        f"DJANGO_SECRET_KEY='{SECRET_KEY}'\n",
    )
    found = settings_of(
        tmp_path,
        env_file,
        "LOG_FORMAT",
        "SITE_URL",
        "SECRET_KEY",
        "ENV_FILE",
        SITE_URL="http://127.0.0.1:9000",
    )
    assert found == {
        "LOG_FORMAT": "json",
        "SITE_URL": "http://127.0.0.1:9000",
        "SECRET_KEY": SECRET_KEY,
        "ENV_FILE": str(env_file),
    }


def test_an_empty_env_file_variable_reads_nothing(tmp_path):
    write_env(tmp_path, "LOG_FORMAT=json\n")
    assert settings_of(tmp_path, None, "LOG_FORMAT", "ENV_FILE") == {"LOG_FORMAT": "text", "ENV_FILE": "None"}


def test_which_file_is_read(tmp_path, monkeypatch):
    default = tmp_path / ".env"
    monkeypatch.delenv("PARLEY_X_FILE", raising=False)
    assert env_file_path("PARLEY_X_FILE", default) is None, "no .env: nothing to read"
    default.write_text("A=1\n")
    assert env_file_path("PARLEY_X_FILE", default) == default
    monkeypatch.setenv("PARLEY_X_FILE", "")
    assert env_file_path("PARLEY_X_FILE", default) is None
    other = tmp_path / "other.env"
    monkeypatch.setenv("PARLEY_X_FILE", str(other))
    with pytest.raises(ImproperlyConfigured, match=r"PARLEY_X_FILE names .*other\.env.*not a file"):
        env_file_path("PARLEY_X_FILE", default)
    other.write_text("A=2\n")
    assert env_file_path("PARLEY_X_FILE", default) == other


def manage(tmp_path: Path, env_file: Path | None, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment(tmp_path, env_file, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_bad_value_in_the_env_file_stops_manage_py_with_one_line(tmp_path):
    result = manage(tmp_path, write_env(tmp_path, "REDIS_URL=nonsense\n"), "check")
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("Parley cannot start: REDIS_URL must be a Redis URL like redis://")


def test_a_missing_env_file_is_named(tmp_path):
    result = manage(tmp_path, tmp_path / "nowhere.env", "check")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"Parley cannot start: PARLEY_ENV_FILE names '{tmp_path / 'nowhere.env'}', which is not a file"
    ]


def test_the_local_site_url_follows_port(tmp_path):
    assert settings_of(tmp_path, None, "SITE_URL")["SITE_URL"] == "http://127.0.0.1:8000"
    assert settings_of(tmp_path, None, "SITE_URL", PORT="8123")["SITE_URL"] == "http://127.0.0.1:8123"
    env_file = write_env(tmp_path, "PORT=8124\n")
    assert settings_of(tmp_path, env_file, "SITE_URL")["SITE_URL"] == "http://127.0.0.1:8124"
    # The redirect URL to register with Discord, as `make doctor` prints it.
    result = manage(tmp_path, env_file, "parley_doctor")
    assert "redirect URL: http://127.0.0.1:8124/accounts/discord/login/callback/" in result.stdout


def test_the_shell_gets_the_files_variables_that_the_environment_lacks(tmp_path):
    env_file = write_env(
        tmp_path,
        "SPACED='two words'\nQUOTED=\"it's ${HOME}\"\nSET_ALREADY=from-the-file\nNOT-A-NAME=skipped\n",
    )
    script = 'eval "$(.venv/bin/python -m config.env)"; printf "%s|%s|%s" "$SPACED" "$QUOTED" "$SET_ALREADY"'
    env = environment(tmp_path, env_file, SET_ALREADY="from-the-environment", HOME="/home/someone")
    result = subprocess.run(
        ["bash", "-c", script.replace(".venv/bin/python", sys.executable)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "two words|it's /home/someone|from-the-environment"
