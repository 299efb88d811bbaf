"""The prefork launch of `vibe worker start` against a real Prefect server: a forked run completes and frees
its slot, a child that dies is marked Crashed while the worker goes on, and a worker killed outright takes
its flow-run processes with it.

One server (PostgreSQL when it answers), `vibe setup`, `prefect deploy` of `crash_probe` with the project's
pull steps, real `vibe worker` subprocesses (the default launch: prefork).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

from deployments.localstack import stop_process_group
from tests.deployments.conftest import ProbeStack, final_run, probe_server, submit, sync, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

# The GitHub token `vibe setup` puts in its Secret block: forked runs get it from their worker, through the fork.
TOKEN = f"ghp_prefork_{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[ProbeStack]:
    probe = {
        "name": "crash-probe",
        "entrypoint": "tests/deployments/crash_probe.py:crash_probe",
        "concurrency_limit": 2,
        "work_pool": {"name": "vibe", "work_queue_name": "medium"},
    }
    env = {"PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_LOGGING_LEVEL": "INFO"}
    home = tmp_path_factory.mktemp("prefork")
    with probe_server(home, redis_url, deployment=probe, env=env, setup_env={"GITHUB_TOKEN": TOKEN}) as stack:
        yield stack


def _submit(stack: ProbeStack, parameters: dict[str, Any]) -> uuid.UUID:
    (run_id,) = sync(submit(stack.deployment, parameters))
    return run_id


async def _deployment_slots(stack: ProbeStack) -> int:
    async with get_client() as client:
        deployment = await client.read_deployment_by_name(stack.deployment)
        assert deployment.global_concurrency_limit is not None
        return deployment.global_concurrency_limit.active_slots


def _procs(stack: ProbeStack, prefix: str) -> dict[str, dict[str, Any]]:
    client = redis.Redis.from_url(stack.redis_url)
    try:
        return {r["run"]: r for r in (json.loads(item) for item in client.lrange(f"{prefix}:procs", 0, -1))}
    finally:
        client.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _zygote_pid(stack: ProbeStack, name: str) -> int:
    wait_for("the zygote ready", lambda: "Prefork launch: zygote" in stack.log(name), 120)
    found = re.search(r"Prefork launch: zygote (\d+)", stack.log(name))
    assert found is not None
    return int(found.group(1))


@pytest.fixture
def worker(stack: ProbeStack) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    name = f"prefork-{uuid.uuid4().hex[:6]}"
    proc = stack.worker(name)
    yield name, proc
    stop_process_group(proc, grace_s=15)


def test_a_forked_run_completes_in_its_own_process_and_frees_its_slot(
    stack: ProbeStack, redis_prefix: str, worker: tuple[str, subprocess.Popen[bytes]]
) -> None:
    name, proc = worker
    zygote = _zygote_pid(stack, name)
    params = {"redis_url": stack.redis_url, "prefix": redis_prefix}
    runs = [_submit(stack, params) for _ in range(3)]
    wait_for("the runs finished", lambda: all(final_run(r) for r in runs), 120)
    for run_id in runs:
        done = final_run(run_id)
        assert done is not None
        assert done.state is not None
        assert done.state.is_completed(), done.state
    assert sync(_deployment_slots(stack)) == 0
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
    wait_for("every child reaped", lambda: not any(_alive(r["pid"]) for r in procs.values()), 20)
    assert proc.poll() is None

    # The Secret block's value reached each run (the worker hands it over through the fork), and it is in no
    # environment but the run's own: not the worker's, not the zygote's; and in no log.
    fingerprint = hashlib.sha256(TOKEN.encode()).hexdigest()
    assert {r["github_token_sha256"] for r in procs.values()} == {fingerprint}
    for pid in (proc.pid, zygote):
        assert TOKEN.encode() not in Path(f"/proc/{pid}/environ").read_bytes()
    assert TOKEN not in stack.log(name)
    assert TOKEN not in sync(_log_text(runs))


async def _log_text(run_ids: list[uuid.UUID]) -> str:
    async with get_client() as client:
        logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=run_ids)))
        return "\n".join(log.message for log in logs)


@pytest.mark.parametrize("how", ["exit", "sigkill"])
def test_a_child_that_dies_is_marked_crashed_and_the_worker_carries_on(
    stack: ProbeStack, redis_prefix: str, worker: tuple[str, subprocess.Popen[bytes]], how: str
) -> None:
    name, proc = worker
    _zygote_pid(stack, name)
    params = {"redis_url": stack.redis_url, "prefix": redis_prefix}
    crashed = _submit(stack, {**params, "how": how})
    wait_for("the dead run ended", lambda: final_run(crashed) is not None, 120)
    ended = final_run(crashed)
    assert ended is not None
    assert ended.state is not None
    assert ended.state.is_crashed(), ended.state
    assert sync(_deployment_slots(stack)) == 0

    after = _submit(stack, params)
    wait_for("the next run finished", lambda: final_run(after) is not None, 120)
    done = final_run(after)
    assert done is not None
    assert done.state is not None
    assert done.state.is_completed(), done.state
    assert proc.poll() is None, stack.log(name)[-3000:]


def test_a_killed_worker_takes_its_flow_processes_with_it(stack: ProbeStack, redis_prefix: str) -> None:
    name = f"killed-{uuid.uuid4().hex[:6]}"
    proc = stack.worker(name)
    try:
        zygote = _zygote_pid(stack, name)
        run_id = _submit(stack, {"redis_url": stack.redis_url, "prefix": redis_prefix, "how": "sleep", "hold_s": 600})
        wait_for("the run started", lambda: str(run_id) in _procs(stack, redis_prefix), 120)
        child = _procs(stack, redis_prefix)[str(run_id)]["pid"]

        os.kill(proc.pid, signal.SIGKILL)  # the worker alone: no chance to hand anything back
        proc.wait(timeout=10)
        wait_for("the flow-run process gone", lambda: not _alive(child), 20)
        wait_for("the zygote gone", lambda: not _alive(zygote), 20)
        # The zygote SIGTERMed the child before it went: the engine reported its run Crashed itself.
        wait_for("the run crashed", lambda: final_run(run_id) is not None, 90)
        ended = final_run(run_id)
        assert ended is not None
        assert ended.state is not None
        assert ended.state.is_crashed(), ended.state
    finally:
        stop_process_group(proc, grace_s=5)
