"""`vibe worker start` stopped with SIGTERM: runs in flight finish within the grace period or go back to the
pool, nothing new is claimed, no concurrency slot leaks, and the worker exits 0.

One real Prefect server (PostgreSQL when it answers) for both cases, `vibe setup`, `prefect deploy` of the
journal probe with the project's pull steps, and real `vibe worker` subprocesses signalled the way a
terminal or a process supervisor does: SIGTERM to the worker's whole process group.
"""

from __future__ import annotations

import asyncio
import json
import os
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
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterState, FlowRunFilterStateType
from prefect.client.schemas.objects import FlowRun, StateType, TaskRun
from prefect.settings import PREFECT_API_URL, temporary_settings

from deployments import catalog
from deployments.localstack import LocalPrefect, stop_process_group

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[2]
CRASH_AFTER_S = 31  # the shortest the settings allow: a handed-back run must outlive it un-crashed
DEPLOYMENT = "journal_probe/journal-probe"
HELD_LIMIT = catalog.llm_limit_name("compat")  # the probe holds a slot of it while it works


@dataclass
class Stack:
    prefect: LocalPrefect
    redis_url: str

    def worker(self, name: str, *, grace_s: float) -> subprocess.Popen[bytes]:
        return self.prefect.start_vibe_worker("vibe", name=name, grace_s=grace_s, cwd=ROOT)

    def log(self, name: str) -> str:
        return self.prefect.worker_log(name).read_text(errors="replace")


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("worker-shutdown")
    env = {
        "VIBE_CRASH_AFTER_S": str(CRASH_AFTER_S),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_LOGGING_LEVEL": "INFO",
    }
    with LocalPrefect(home, env=env) as prefect:
        client_env = prefect.client_env()
        out = subprocess.run(
            [sys.executable, "-m", "cli", "setup", "--json"], cwd=ROOT, env=client_env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
        config["deployments"] = [
            {
                "name": "journal-probe",
                "entrypoint": "tests/deployments/journal_probe.py:journal_probe",
                "tags": ["vibe"],
                "concurrency_limit": 2,
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


async def _active_slots() -> dict[str, int]:
    """Slots held right now: the probe deployment's limit and every global limit `vibe setup` made."""
    async with get_client() as client:
        deployment = await client.read_deployment_by_name(DEPLOYMENT)
        assert deployment.global_concurrency_limit is not None
        slots = {"deployment": deployment.global_concurrency_limit.active_slots}
        for limit in await client.read_global_concurrency_limits(limit=200):
            # Queue rate limits (`vibe-queue-*`) hold nothing: their slots decay by themselves.
            if limit.name.startswith("vibe-") and not limit.slot_decay_per_second:
                slots[limit.name] = limit.active_slots
        return slots


def _events(redis_url: str, key: str) -> list[dict[str, Any]]:
    client = redis.Redis.from_url(redis_url)
    try:
        return [json.loads(item) for item in client.lrange(key, 0, -1)]
    finally:
        client.close()


def _wait_for(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not after {timeout:.0f} s"
        time.sleep(0.5)


def _sigterm(worker: subprocess.Popen[bytes]) -> None:
    # The whole group, as Ctrl-C in a terminal or `stop_process_group` does: flow-run processes must not be in it.
    os.killpg(worker.pid, signal.SIGTERM)


def _exit_code(worker: subprocess.Popen[bytes], timeout: float) -> int:
    try:
        return worker.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_process_group(worker, grace_s=1)
        raise AssertionError(f"the worker did not exit within {timeout:.0f} s of SIGTERM") from None


def test_sigterm_with_enough_grace_lets_a_run_finish_claims_nothing_new_and_a_second_signal_hands_back(
    stack: Stack, redis_prefix: str
) -> None:
    name = f"drain-{uuid.uuid4().hex[:6]}"
    worker = stack.worker(name, grace_s=120)
    params = {"redis_url": stack.redis_url, "prefix": redis_prefix}
    short = _run(_submit({**params, "steps": 6, "step_s": 1.0}))
    long = _run(_submit({**params, "steps": 600, "step_s": 1.0}))
    _wait_for("both runs working", lambda: _runs_with_steps(stack, redis_prefix) == {str(short), str(long)}, 150)

    _sigterm(worker)
    # Submitted after the signal, while the short run still has seconds to go and the worker polls every
    # second: a worker that kept polling would take it.
    later = _run(_submit({**params, "steps": 1, "step_s": 0.0}))
    _wait_for("the short run completed", lambda: _final(short), 60)
    done = _run(_read(short))
    assert done.state is not None
    assert done.state.is_completed(), done.state
    assert worker.poll() is None, "the worker left before its grace period while a run was still going"

    # A second signal hands the long run back at once instead of waiting out the 120 s.
    _sigterm(worker)
    assert _exit_code(worker, timeout=30) == 0, stack.log(name)[-3000:]
    assert "finished 1 run, handed back 1" in stack.log(name)
    handed_back = _run(_read(long))
    assert handed_back.state is not None
    assert handed_back.state.name == "AwaitingRetry", handed_back.state
    waiting = _run(_read(later))
    assert waiting.state is not None
    assert waiting.state.type is StateType.SCHEDULED, waiting.state
    assert waiting.state.name == "Scheduled"
    assert str(later) not in {e["run"] for e in _events(stack.redis_url, f"{redis_prefix}:starts")}
    for run_id in (later, long):
        _run(_delete(run_id))


def _runs_with_steps(stack: Stack, prefix: str) -> set[str]:
    return {e["run"] for e in _events(stack.redis_url, f"{prefix}:steps")}


async def _delete(run_id: uuid.UUID) -> None:
    async with get_client() as client:
        await client.delete_flow_run(run_id)


def test_sigterm_with_a_short_grace_hands_the_run_back_and_another_worker_completes_it(
    stack: Stack, redis_prefix: str
) -> None:
    steps = 12
    name = f"handback-{uuid.uuid4().hex[:6]}"
    worker = stack.worker(name, grace_s=2)
    params = {"redis_url": stack.redis_url, "prefix": redis_prefix, "steps": steps, "step_s": 1.0}
    run_id = _run(_submit({**params, "limit_name": HELD_LIMIT}))
    _wait_for("the run worked a step", lambda: len(_events(stack.redis_url, f"{redis_prefix}:steps")) >= 1, 120)
    assert _run(_active_slots())[HELD_LIMIT] == 1  # the probe holds its slot while it works

    _sigterm(worker)
    assert _exit_code(worker, timeout=60) == 0, stack.log(name)[-3000:]
    assert "finished 0 runs, handed back 1" in stack.log(name)
    handed_back_at = time.monotonic()
    steps_before = len(_events(stack.redis_url, f"{redis_prefix}:steps"))
    assert steps_before < steps

    run = _run(_read(run_id))
    assert run.state is not None
    assert run.state.type is StateType.SCHEDULED, run.state
    assert run.state.name == "AwaitingRetry"
    # No slot leaked: the deployment's and the flow's global limit are free again (queue rate limits decay).
    _wait_for("every slot free", lambda: set(_run(_active_slots()).values()) == {0}, 30)

    # The step in flight was stopped, not crashed: its task run says Cancelled, and none is left Crashed or
    # Running (the steps done before it are Completed).
    _wait_for("every step's task run recorded", lambda: len(_run(_task_runs(run_id))) >= steps_before + 1, 30)
    first_attempt = _run(_task_runs(run_id))
    assert sorted(t.state_name or "" for t in first_attempt) == ["Cancelled"] + ["Completed"] * steps_before
    cancelled = next(t for t in first_attempt if t.state_name == "Cancelled")
    assert cancelled.state is not None
    assert "handed its flow run back" in (cancelled.state.message or "")

    # Nobody picks it up for longer than the crash automation waits: a handed-back run is not crashed.
    time.sleep(max(0.0, handed_back_at + CRASH_AFTER_S + 8 - time.monotonic()))
    run = _run(_read(run_id))
    assert run.state is not None
    assert run.state.name == "AwaitingRetry", run.state
    assert {t.state_name for t in _run(_task_runs(run_id))} == {"Cancelled", "Completed"}

    # Another worker takes it and it resumes from its journal: every step done exactly once.
    other = f"resume-{uuid.uuid4().hex[:6]}"
    second = stack.worker(other, grace_s=30)
    _wait_for("the handed-back run completed", lambda: _final(run_id), 150)
    done = _run(_read(run_id))
    assert done.state is not None
    assert done.state.is_completed(), done.state
    done_steps = [e["step"] for e in _events(stack.redis_url, f"{redis_prefix}:steps") if e["run"] == str(run_id)]
    assert sorted(done_steps) == list(range(steps))
    attempts = [e for e in _events(stack.redis_url, f"{redis_prefix}:starts") if e["run"] == str(run_id)]
    assert len(attempts) == 2
    _wait_for("every slot free", lambda: set(_run(_active_slots()).values()) == {0}, 30)
    # The finished run's task runs: one Completed per step, and the one cancelled step of the first attempt.
    _wait_for("the second attempt's task runs", lambda: len(_run(_task_runs(run_id))) >= steps + 1, 30)
    states = sorted(t.state_name or "" for t in _run(_task_runs(run_id)))
    assert states == ["Cancelled"] + ["Completed"] * steps

    _sigterm(second)  # idle: it stops at once
    assert _exit_code(second, timeout=30) == 0, stack.log(other)[-3000:]
    assert "handed back 0" in stack.log(other)
    assert _run(_count_running()) == 0


def _final(run_id: uuid.UUID) -> bool:
    state = _run(_read(run_id)).state
    return state is not None and state.is_final()


async def _task_runs(run_id: uuid.UUID) -> list[TaskRun]:
    async with get_client() as client:
        return await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))


async def _count_running() -> int:
    async with get_client() as client:
        running = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING])))
        return await client.count_flow_runs(flow_run_filter=running)
