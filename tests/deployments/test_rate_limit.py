"""The queue rate limit against a real server and a real prefork `vibe worker`: it holds at its configured
rate, and a run it holds back says so (state `AwaitingRateLimit`, a message naming the limit) while holding no
deployment slot and no process.

The rate is 6 starts per minute (a burst of 2), so 8 runs submitted at once show the limit in about a minute;
the assertions count starts against what the rate allows.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
from prefect.client.schemas.objects import FlowRun, StateType

from deployments import catalog
from deployments.localstack import stop_process_group
from deployments.steps import AWAITING_RATE_LIMIT
from tests.deployments.conftest import ProbeStack, probe_server, submit, sync

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

RATE = 6  # starts per minute on the queue
BURST = catalog.queue_limit_burst(RATE)
RUNS = 8
LIMIT = catalog.queue_limit_name("medium")
CRASH_PROBE = "crash_probe/crash-probe"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[ProbeStack]:
    probe = {
        "name": "crash-probe",
        "entrypoint": "tests/deployments/crash_probe.py:crash_probe",
        "concurrency_limit": RUNS,
        "work_pool": {"name": "vibe", "work_queue_name": "medium"},
    }
    # INFO, as a user runs it: the tests set WARNING for themselves, and the "waiting" log line is INFO.
    env = {
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "VIBE_QUEUE_RATE_PER_MINUTE": str(RATE),
        "PREFECT_LOGGING_LEVEL": "INFO",
    }
    with probe_server(tmp_path_factory.mktemp("rate"), redis_url, deployment=probe, env=env) as stack:
        yield stack


async def _snapshot(run_ids: list[uuid.UUID]) -> tuple[list[FlowRun], int]:
    # The slots first, then the runs: a run the worker claims between the two reads only adds to the runs
    # counted active, so the slots held can exceed the active runs only by runs finishing in between.
    async with get_client() as client:
        deployment = await client.read_deployment_by_name(CRASH_PROBE)
        assert deployment.global_concurrency_limit is not None
        runs = await client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=run_ids)))
        return runs, deployment.global_concurrency_limit.active_slots


async def _log_text(run_ids: list[uuid.UUID]) -> str:
    async with get_client() as client:
        logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=run_ids)))
        return "\n".join(log.message for log in logs)


def test_the_queue_rate_limit_holds_and_a_held_back_run_holds_no_slot(api: ProbeStack, redis_url: str) -> None:
    prefix = f"vibe-test:{uuid.uuid4().hex[:12]}"
    worker = api.worker("rate", grace_s=None)
    try:
        run_ids = sync(submit(api.deployment, {"redis_url": redis_url, "prefix": prefix}, count=RUNS))
        waiting_seen: list[FlowRun] = []
        # (deployment slots held, runs Pending or Running, runs waiting for the rate limit)
        slots_while_waiting: list[tuple[int, int, int]] = []
        deadline = time.monotonic() + 300
        while True:
            runs, slots = sync(_snapshot(run_ids))
            states = [r.state for r in runs if r.state is not None]
            if len(states) == RUNS and all(s.is_final() for s in states):
                break
            assert time.monotonic() < deadline, [s.name for s in states]
            waiting = [r for r in runs if r.state is not None and r.state.name == AWAITING_RATE_LIMIT]
            # The server gives a sent-back run's slot back on its next pass (well within a poll interval here):
            # a sample counts once every run in it was already seen waiting in an earlier one.
            settled = bool(waiting) and {r.id for r in waiting} <= {r.id for r in waiting_seen}
            if settled:
                active = sum(1 for s in states if s.type in {StateType.PENDING, StateType.RUNNING})
                slots_while_waiting.append((slots, active, len(waiting)))
            waiting_seen.extend(waiting)
            time.sleep(0.5)

        assert all(r.state is not None and r.state.is_completed() for r in runs)
        client = redis.Redis.from_url(redis_url)
        try:
            starts = sorted(json.loads(item)["t"] for item in client.lrange(f"{prefix}:procs", 0, -1))
            client.delete(f"{prefix}:procs")
        finally:
            client.close()
        assert len(starts) == RUNS

        # The rate holds: over any stretch, no more starts than the burst plus what the rate refills (+1 for
        # the slot freed while the count is taken).
        for i, first in enumerate(starts):
            for j in range(i, len(starts)):
                allowed = BURST + (starts[j] - first) * RATE / 60 + 1
                assert j - i + 1 <= allowed, f"{j - i + 1} starts in {starts[j] - first:.1f} s at {RATE}/min"
        # And it is what set the pace: the runs beyond the burst waited for the rate to refill.
        assert starts[-1] - starts[0] >= 0.8 * (RUNS - BURST - 1) * 60 / RATE

        # Held-back runs said so and held no deployment slot while they waited.
        assert waiting_seen, "no run was ever seen waiting for the rate limit"
        assert all(r.state is not None and LIMIT in (r.state.message or "") for r in waiting_seen)
        # The two reads of a sample are not one transaction: one run may change state between them (+1).
        assert max(waiting for _, _, waiting in slots_while_waiting) >= 2
        assert all(held <= active + 1 for held, active, _ in slots_while_waiting), slots_while_waiting
        # The run's log says so too (logs reach the server in batches: allow a few seconds).
        deadline = time.monotonic() + 15
        while LIMIT not in (text := sync(_log_text(run_ids))) and time.monotonic() < deadline:
            time.sleep(1)
        assert LIMIT in text, text[-3000:]
        assert worker.poll() is None
    finally:
        stop_process_group(worker, grace_s=15)
