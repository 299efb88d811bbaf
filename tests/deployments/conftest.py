"""Scaffolding shared by the deployments tests that run a probe flow through a real server and `vibe worker`.

`probe_server(...)` starts one Prefect server (PostgreSQL when it answers), runs `vibe setup`, deploys one probe
flow with the project's own pull steps (`prefect.yaml` with its deployments replaced) and points this process's
Prefect client at it; `ProbeStack` starts workers and reads their logs; `submit`, `read_run`, `final_run`,
`wait_for` and `sync` are the waiting and reading helpers the tests share.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.settings import PREFECT_API_URL, temporary_settings

from deployments.localstack import LocalPrefect

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run one of the async client helpers from a test."""
    return asyncio.run(coro)


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> None:
    """Poll `check` every 0.5 s; fail naming `what` after `timeout` seconds (a generous upper bound)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not after {timeout:.0f} s"
        time.sleep(0.5)


@dataclass
class ProbeStack:
    """The server, the Redis the probes write to, and the deployment's full name (`flow/deployment`)."""

    prefect: LocalPrefect
    redis_url: str
    deployment: str

    def worker(self, name: str, *, grace_s: float | None = 5) -> subprocess.Popen[bytes]:
        """A `vibe worker start` (the default launch, prefork) on the pool `vibe`, in its own process group."""
        return self.prefect.start_vibe_worker("vibe", name=name, grace_s=grace_s, cwd=ROOT)

    def log(self, name: str) -> str:
        return self.prefect.worker_log(name).read_text(errors="replace")


def _cli(args: list[str], env: dict[str, str]) -> None:
    out = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


@contextmanager
def probe_server(
    home: Path,
    redis_url: str,
    *,
    deployment: dict[str, Any],
    env: dict[str, str],
    setup_env: dict[str, str] | None = None,
) -> Iterator[ProbeStack]:
    """A server with `vibe setup` done and the probe `deployment` deployed, this process's client pointed at it.

    Args:
        home: the server's PREFECT_HOME, database and logs.
        redis_url: the probes' Redis.
        deployment: the `prefect.yaml` entry of the probe (name, entrypoint, limit, queue, ...).
        env: extra environment of every client process (workers, the CLI).
        setup_env: extra environment of `vibe setup` only (e.g. a token for its Secret block).
    """
    with LocalPrefect(home, env=env) as prefect:
        client_env = prefect.client_env()
        _cli(["-m", "cli", "setup", "--json"], {**client_env, **(setup_env or {})})
        config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
        config["deployments"] = [{"tags": ["vibe"], "schedules": [], **deployment}]
        deploy_file = home / "prefect.yaml"
        deploy_file.write_text(yaml.safe_dump(config, sort_keys=False))
        _cli(["-m", "prefect", "--no-prompt", "deploy", "--all", "--prefect-file", str(deploy_file)], client_env)
        flow_name = str(deployment["entrypoint"]).rsplit(":", 1)[1]
        with temporary_settings({PREFECT_API_URL: prefect.api_url}):
            yield ProbeStack(prefect, redis_url, f"{flow_name}/{deployment['name']}")


async def submit(deployment: str, parameters: dict[str, Any], count: int = 1) -> list[uuid.UUID]:
    """Create `count` runs of `deployment` with `parameters`; their ids."""
    async with get_client() as client:
        found = await client.read_deployment_by_name(deployment)
        return [
            (await client.create_flow_run_from_deployment(found.id, parameters=parameters)).id for _ in range(count)
        ]


async def read_run(run_id: uuid.UUID) -> FlowRun:
    async with get_client() as client:
        return await client.read_flow_run(run_id)


def final_run(run_id: uuid.UUID) -> FlowRun | None:
    """The run once it is in a final state, else None."""
    run = sync(read_run(run_id))
    return run if run.state is not None and run.state.is_final() else None
