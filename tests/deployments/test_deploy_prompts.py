"""`prefect deploy --all` in a terminal asks nothing: run against a real server in a pseudo-terminal, with
prompts on, it deploys every deployment of `prefect.yaml` (tagged for kind and priority) without waiting
for an answer.
"""

from __future__ import annotations

import asyncio
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings

from deployments.localstack import LocalPrefect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_TIMEOUT_S = 240.0


def _in_a_terminal(command: list[str], env: dict[str, str], timeout: float) -> tuple[int | None, str]:
    """Run `command` with a pseudo-terminal as stdin/stdout/stderr; never answers; returns (code, output)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    output = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            readable, _, _ = select.select([leader], [], [], 0.5)
            if readable:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # EIO: the terminal's other side closed
                    chunk = b""
                if not chunk and proc.poll() is not None:
                    break
                output += chunk
            elif proc.poll() is not None:
                break
    finally:
        if proc.poll() is None:
            proc.kill()  # it waited for an answer that never came
        proc.wait()
        os.close(leader)
    return (proc.returncode if time.monotonic() < deadline else None), output.decode(errors="replace")


def test_prefect_deploy_all_in_a_terminal_asks_nothing(tmp_path: Path) -> None:
    with LocalPrefect(tmp_path, database="sqlite") as prefect:
        env = prefect.client_env()
        out = subprocess.run([sys.executable, "-m", "cli", "setup", "--json"], cwd=ROOT, env=env, capture_output=True)
        assert out.returncode == 0, out.stderr
        env.pop("PREFECT_CLI_PROMPT", None)  # prompts on, as in a user's terminal
        env["COLUMNS"] = "200"
        code, output = _in_a_terminal([sys.executable, "-m", "prefect", "deploy", "--all"], env, DEPLOY_TIMEOUT_S)
        # A prompt would wait for ever: the command would still be running at the deadline (code None).
        assert code == 0, output[-4000:]
        assert "Would you like" not in output, output[-4000:]

        config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
        expected = {d["name"]: d for d in config["deployments"] if (ROOT / d["entrypoint"].split(":")[0]).exists()}

        async def deployed() -> dict[str, tuple[list[str], int]]:
            async with get_client() as client:
                return {d.name: (sorted(d.tags), len(d.schedules)) for d in await client.read_deployments()}

        with temporary_settings({PREFECT_API_URL: prefect.api_url}):
            found = asyncio.run(deployed())
        assert set(found) == set(expected)
        for name, (tags, schedules) in found.items():
            queue = expected[name]["work_pool"]["work_queue_name"]
            assert tags == sorted(["vibe", f"kind:{name}", f"priority:{queue}"])
            assert schedules == len(expected[name].get("schedules") or [])
