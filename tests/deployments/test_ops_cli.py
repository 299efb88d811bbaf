"""The operations commands fail clearly, without a traceback and without starting a Prefect server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _vibe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True, env=environment)


def test_setup_without_a_prefect_api_says_how_to_configure_one() -> None:
    out = _vibe("setup")
    assert out.returncode == 2
    assert "no Prefect API is configured" in out.stderr
    assert "PREFECT_API_URL" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("status", "not-a-run-id"), "is not a run id"),
        (("submit", "index", "/no/such/repository"), "is not a directory"),
        (("submit", "run", "Add a flag", "--repo", ".", "--priority", "urgent"), "--priority must be one of"),
    ],
)
def test_bad_input_is_one_clear_line(args: tuple[str, ...], message: str, tmp_path: Path) -> None:
    out = _vibe(*args, env={"PREFECT_API_URL": "http://127.0.0.1:9/api"})
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_an_unreachable_prefect_api_is_reported_as_such() -> None:
    out = _vibe("status", "00000000-0000-0000-0000-000000000000", env={"PREFECT_API_URL": "http://127.0.0.1:9/api"})
    assert out.returncode == 2
    assert "cannot reach the Prefect API at http://127.0.0.1:9/api" in out.stderr
