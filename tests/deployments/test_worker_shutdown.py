"""`vibe worker start` stopped with SIGTERM: runs in flight finish within the grace period or go back to the
pool, nothing new is claimed, no concurrency slot leaks, and the worker exits 0.

One real Prefect server (PostgreSQL when it answers) for both cases, `vibe setup`, `prefect deploy` of the
journal probe with the project's pull steps, and real `vibe worker` subprocesses signalled the way a
terminal or a process supervisor does: SIGTERM to the worker's whole process group.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterState, FlowRunFilterStateType
from prefect.client.schemas.objects import StateType, TaskRun

from deployments import catalog
from deployments.localstack import stop_process_group
from tests.deployments.conftest import ProbeStack, final_run, probe_server, read_run, submit, sync, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

CRASH_AFTER_S = 31  # the shortest the settings allow: a handed-back run must outlive it un-crashed
HELD_LIMIT = catalog.llm_limit_name("compat")  # the probe holds a slot of it while it works


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[ProbeStack]:
    probe = {
        "name": "journal-probe",
        "entrypoint": "tests/deployments/journal_probe.py:journal_probe",
        "concurrency_limit": 2,
        "work_pool": {"name": "vibe", "work_queue_name": "medium"},
    }
    env = {
        "VIBE_CRASH_AFTER_S": str(CRASH_AFTER_S),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_LOGGING_LEVEL": "INFO",
    }
    with probe_server(tmp_path_factory.mktemp("worker-shutdown"), redis_url, deployment=probe, env=env) as stack:
        yield stack


def _submit(stack: ProbeStack, parameters: dict[str, Any]) -> uuid.UUID:
    (run_id,) = sync(submit(stack.deployment, parameters))
    return run_id


async def _active_slots(stack: ProbeStack) -> dict[str, int]:
    """Slots held right now: the probe deployment's limit and every global limit `vibe setup` made."""
    async with get_client() as client:
        deployment = await client.read_deployment_by_name(stack.deployment)
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
    stack: ProbeStack, redis_prefix: str
) -> None:
    name = f"drain-{uuid.uuid4().hex[:6]}"
    worker = stack.worker(name, grace_s=120)
    params = {"redis_url": stack.redis_url, "prefix": redis_prefix}
    short = _submit(stack, {**params, "steps": 6, "step_s": 1.0})
    long = _submit(stack, {**params, "steps": 600, "step_s": 1.0})
    wait_for("both runs working", lambda: _runs_with_steps(stack, redis_prefix) == {str(short), str(long)}, 150)

    _sigterm(worker)
    # Submitted after the signal, while the short run still has seconds to go and the worker polls every
    # second: a worker that kept polling would take it.
    later = _submit(stack, {**params, "steps": 1, "step_s": 0.0})
    wait_for("the short run completed", lambda: final_run(short) is not None, 60)
    done = sync(read_run(short))
    assert done.state is not None
    assert done.state.is_completed(), done.state
    assert worker.poll() is None, "the worker left before its grace period while a run was still going"

    # A second signal hands the long run back at once instead of waiting out the 120 s.
    _sigterm(worker)
    assert _exit_code(worker, timeout=30) == 0, stack.log(name)[-3000:]
    assert "finished 1 run, handed back 1" in stack.log(name)
    handed_back = sync(read_run(long))
    assert handed_back.state is not None
    assert handed_back.state.name == "AwaitingRetry", handed_back.state
    waiting = sync(read_run(later))
    assert waiting.state is not None
    assert waiting.state.type is StateType.SCHEDULED, waiting.state
    assert waiting.state.name == "Scheduled"
    assert str(later) not in {e["run"] for e in _events(stack.redis_url, f"{redis_prefix}:starts")}
    for run_id in (later, long):
        sync(_delete(run_id))


def _runs_with_steps(stack: ProbeStack, prefix: str) -> set[str]:
    return {e["run"] for e in _events(stack.redis_url, f"{prefix}:steps")}


async def _delete(run_id: uuid.UUID) -> None:
    async with get_client() as client:
        await client.delete_flow_run(run_id)


def test_sigterm_with_a_short_grace_hands_the_run_back_and_another_worker_completes_it(
    stack: ProbeStack, redis_prefix: str
) -> None:
    steps = 12
    name = f"handback-{uuid.uuid4().hex[:6]}"
    worker = stack.worker(name, grace_s=2)
    params = {"redis_url": stack.redis_url, "prefix": redis_prefix, "steps": steps, "step_s": 1.0}
    run_id = _submit(stack, {**params, "limit_name": HELD_LIMIT})
    wait_for("the run worked a step", lambda: len(_events(stack.redis_url, f"{redis_prefix}:steps")) >= 1, 120)
    assert sync(_active_slots(stack))[HELD_LIMIT] == 1  # the probe holds its slot while it works

    _sigterm(worker)
    assert _exit_code(worker, timeout=60) == 0, stack.log(name)[-3000:]
    assert "finished 0 runs, handed back 1" in stack.log(name)
    handed_back_at = time.monotonic()
    steps_before = len(_events(stack.redis_url, f"{redis_prefix}:steps"))
    assert steps_before < steps

    run = sync(read_run(run_id))
    assert run.state is not None
    assert run.state.type is StateType.SCHEDULED, run.state
    assert run.state.name == "AwaitingRetry"
    # No slot leaked: the deployment's and the flow's global limit are free again (queue rate limits decay).
    wait_for("every slot free", lambda: set(sync(_active_slots(stack)).values()) == {0}, 30)

    # The step in flight was stopped, not crashed: its task run says Cancelled, and none is left Crashed or
    # Running (the steps done before it are Completed).
    wait_for("every step's task run recorded", lambda: len(sync(_task_runs(run_id))) >= steps_before + 1, 30)
    first_attempt = sync(_task_runs(run_id))
    assert sorted(t.state_name or "" for t in first_attempt) == ["Cancelled"] + ["Completed"] * steps_before
    cancelled = next(t for t in first_attempt if t.state_name == "Cancelled")
    assert cancelled.state is not None
    assert "handed its flow run back" in (cancelled.state.message or "")

    # Nobody picks it up for longer than the crash automation waits: a handed-back run is not crashed.
    time.sleep(max(0.0, handed_back_at + CRASH_AFTER_S + 8 - time.monotonic()))
    run = sync(read_run(run_id))
    assert run.state is not None
    assert run.state.name == "AwaitingRetry", run.state
    assert {t.state_name for t in sync(_task_runs(run_id))} == {"Cancelled", "Completed"}

    # Another worker takes it and it resumes from its journal: every step done exactly once.
    other = f"resume-{uuid.uuid4().hex[:6]}"
    second = stack.worker(other, grace_s=30)
    wait_for("the handed-back run completed", lambda: final_run(run_id) is not None, 150)
    done = sync(read_run(run_id))
    assert done.state is not None
    assert done.state.is_completed(), done.state
    done_steps = [e["step"] for e in _events(stack.redis_url, f"{redis_prefix}:steps") if e["run"] == str(run_id)]
    assert sorted(done_steps) == list(range(steps))
    attempts = [e for e in _events(stack.redis_url, f"{redis_prefix}:starts") if e["run"] == str(run_id)]
    assert len(attempts) == 2
    wait_for("every slot free", lambda: set(sync(_active_slots(stack)).values()) == {0}, 30)
    # The finished run's task runs: one Completed per step, and the one cancelled step of the first attempt.
    wait_for("the second attempt's task runs", lambda: len(sync(_task_runs(run_id))) >= steps + 1, 30)
    states = sorted(t.state_name or "" for t in sync(_task_runs(run_id)))
    assert states == ["Cancelled"] + ["Completed"] * steps

    _sigterm(second)  # idle: it stops at once
    assert _exit_code(second, timeout=30) == 0, stack.log(other)[-3000:]
    assert "handed back 0" in stack.log(other)
    assert sync(_count_running()) == 0


async def _task_runs(run_id: uuid.UUID) -> list[TaskRun]:
    async with get_client() as client:
        return await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))


async def _count_running() -> int:
    async with get_client() as client:
        running = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING])))
        return await client.count_flow_runs(flow_run_filter=running)
