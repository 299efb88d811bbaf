"""The prefork launch of `vibe worker start` against a real Prefect server: a forked run completes and frees
its slot, a child that dies is marked Crashed while the worker goes on, and a worker killed outright takes
its flow-run processes with it.

One server (PostgreSQL when it answers), `vibe setup`, `prefect deploy` of `crash_probe` with the project's
pull steps, real `vibe worker` subprocesses (the default launch: prefork).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.settings import PREFECT_API_URL, temporary_settings

from deployments.localstack import LocalPrefect, stop_process_group

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENT = "crash_probe/crash-probe"


@dataclass
class Stack:
    prefect: LocalPrefect
    redis_url: str

    def worker(self, name: str) -> subprocess.Popen[bytes]:
        return self.prefect.start_vibe_worker("vibe", name=name, grace_s=5, cwd=ROOT)

    def log(self, name: str) -> str:
        return self.prefect.worker_log(name).read_text(errors="replace")


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("prefork")
    env = {"PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_LOGGING_LEVEL": "INFO"}
    with LocalPrefect(home, env=env) as prefect:
        client_env = prefect.client_env()
        out = subprocess.run(
            [sys.executable, "-m", "cli", "setup", "--json"], cwd=ROOT, env=client_env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
        config["deployments"] = [
            {
                "name": "crash-probe",
                "entrypoint": "tests/deployments/crash_probe.py:crash_probe",
                "tags": ["vibe"],
                "concurrency_limit": 2,
                "schedules": [],
                "work_pool": {"name": "vibe", "work_queue_name": "medium"},
            }
        ]
        deploy_file = home / "prefect.yaml"
        deploy_file.write_text(yaml.safe_dump(config, sort_keys=False))
        out = subprocess.run(
            [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all", "--prefect-file", str(deploy_file)],
            cwd=ROOT, env=client_env, capture_output=True, text=True,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        with temporary_settings({PREFECT_API_URL: prefect.api_url}):
            yield Stack(prefect, redis_url)


async def _submit(parameters: dict[str, Any]) -> uuid.UUID:
    async with get_client() as client:
        deployment = await client.read_deployment_by_name(DEPLOYMENT)
        run = await client.create_flow_run_from_deployment(deployment.id, parameters=parameters)
        return run.id


async def _read(run_id: uuid.UUID) -> FlowRun:
    async with get_client() as client:
        return await client.read_flow_run(run_id)


async def _deployment_slots() -> int:
    async with get_client() as client:
        deployment = await client.read_deployment_by_name(DEPLOYMENT)
        assert deployment.global_concurrency_limit is not None
        return deployment.global_concurrency_limit.active_slots


def _procs(stack: Stack, prefix: str) -> dict[str, dict[str, Any]]:
    client = redis.Redis.from_url(stack.redis_url)
    try:
        return {r["run"]: r for r in (json.loads(item) for item in client.lrange(f"{prefix}:procs", 0, -1))}
    finally:
        client.close()


def _wait_for(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not after {timeout:.0f} s"
        time.sleep(0.5)


def _final(run_id: uuid.UUID) -> FlowRun | None:
    run: FlowRun = _run(_read(run_id))
    return run if run.state is not None and run.state.is_final() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _zygote_pid(stack: Stack, name: str) -> int:
    _wait_for("the zygote ready", lambda: "Prefork launch: zygote" in stack.log(name), 120)
    found = re.search(r"Prefork launch: zygote (\d+)", stack.log(name))
    assert found is not None
    return int(found.group(1))


@pytest.fixture
def worker(stack: Stack) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    name = f"prefork-{uuid.uuid4().hex[:6]}"
    proc = stack.worker(name)
    yield name, proc
    stop_process_group(proc, grace_s=15)


def test_a_forked_run_completes_in_its_own_process_and_frees_its_slot(
    stack: Stack, redis_prefix: str, worker: tuple[str, subprocess.Popen[bytes]]
) -> None:
    name, proc = worker
    zygote = _zygote_pid(stack, name)
    params = {"redis_url": stack.redis_url, "prefix": redis_prefix}
    runs = [_run(_submit(params)) for _ in range(3)]
    _wait_for("the runs finished", lambda: all(_final(r) for r in runs), 120)
    for run_id in runs:
        done = _final(run_id)
        assert done is not None
        assert done.state is not None
        assert done.state.is_completed(), done.state
    assert _run(_deployment_slots()) == 0
    procs = _procs(stack, redis_prefix)
    assert set(procs) == {str(r) for r in runs}
    for run_id, record in procs.items():
        # Forked from the zygote, each in a session of its own, with the engine's environment.
        assert record["ppid"] == zygote
        assert record["sid"] == record["pid"]
        assert record["flow_run_env"] == run_id
    assert len({r["pid"] for r in procs.values()}) == 3
    assert len({r["random"] for r in procs.values()}) == 3, "children must not share the zygote's random state"
    # A run is Completed a moment before its process has exited: then the zygote reaps it.
    _wait_for("every child reaped", lambda: not any(_alive(r["pid"]) for r in procs.values()), 20)
    assert proc.poll() is None


@pytest.mark.parametrize("how", ["exit", "sigkill"])
def test_a_child_that_dies_is_marked_crashed_and_the_worker_carries_on(
    stack: Stack, redis_prefix: str, worker: tuple[str, subprocess.Popen[bytes]], how: str
) -> None:
    name, proc = worker
    _zygote_pid(stack, name)
    params = {"redis_url": stack.redis_url, "prefix": redis_prefix}
    crashed = _run(_submit({**params, "how": how}))
    _wait_for("the dead run ended", lambda: _final(crashed) is not None, 120)
    ended = _final(crashed)
    assert ended is not None
    assert ended.state is not None
    assert ended.state.is_crashed(), ended.state
    assert _run(_deployment_slots()) == 0

    after = _run(_submit(params))
    _wait_for("the next run finished", lambda: _final(after) is not None, 120)
    done = _final(after)
    assert done is not None
    assert done.state is not None
    assert done.state.is_completed(), done.state
    assert proc.poll() is None, stack.log(name)[-3000:]


def test_a_killed_worker_takes_its_flow_processes_with_it(stack: Stack, redis_prefix: str) -> None:
    name = f"killed-{uuid.uuid4().hex[:6]}"
    proc = stack.worker(name)
    try:
        zygote = _zygote_pid(stack, name)
        run_id = _run(_submit({"redis_url": stack.redis_url, "prefix": redis_prefix, "how": "sleep", "hold_s": 600}))
        _wait_for("the run started", lambda: str(run_id) in _procs(stack, redis_prefix), 120)
        child = _procs(stack, redis_prefix)[str(run_id)]["pid"]

        os.kill(proc.pid, signal.SIGKILL)  # the worker alone: no chance to hand anything back
        proc.wait(timeout=10)
        _wait_for("the flow-run process gone", lambda: not _alive(child), 20)
        _wait_for("the zygote gone", lambda: not _alive(zygote), 20)
        # The zygote SIGTERMed the child before it went: the engine reported its run Crashed itself.
        _wait_for("the run crashed", lambda: _final(run_id) is not None, 90)
        ended = _final(run_id)
        assert ended is not None
        assert ended.state is not None
        assert ended.state.is_crashed(), ended.state
    finally:
        stop_process_group(proc, grace_s=5)
