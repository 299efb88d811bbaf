"""The retention flow against a real Prefect server (the session's test harness).

Runs are made with real flows (so they carry real logs and artifacts), tagged with a tag private to the test
so that the cleanup touches nothing else on the shared harness server.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import pytest
from prefect import flow, get_run_logger, tags
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, LogFilter, LogFilterFlowRunId
from prefect.exceptions import ObjectNotFound

from flows.cleanup_runs import cleanup_runs


@flow(name="retention-probe")
def _probe(fail: bool) -> str:
    get_run_logger().warning("probe log line")
    create_markdown_artifact(markdown="probe artifact", key="retention-probe")
    if fail:
        raise RuntimeError("this probe fails on purpose")
    return "ok"


def _make_runs(tag: str) -> tuple[uuid.UUID, uuid.UUID]:
    with tags(tag):
        done = _probe(fail=False, return_state=True)
        failed = _probe(fail=True, return_state=True)
    assert done.is_completed()
    assert failed.is_failed()
    assert done.state_details.flow_run_id
    assert failed.state_details.flow_run_id
    return done.state_details.flow_run_id, failed.state_details.flow_run_id


async def _exists(run_id: uuid.UUID) -> bool:
    async with get_client() as client:
        try:
            await client.read_flow_run(run_id)
        except ObjectNotFound:
            return False
        return True


async def _artifacts_and_logs(run_id: uuid.UUID) -> tuple[int, int]:
    async with get_client() as client:
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
        logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
    return len(artifacts), len(logs)


def _eventually(check: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.25)
    return False


@pytest.mark.usefixtures("prefect_harness")
def test_cleanup_deletes_expired_runs_with_their_logs_and_artifacts_and_reports_them() -> None:
    tag = f"retention-{uuid.uuid4().hex[:8]}"
    done, failed = _make_runs(tag)
    # Logs arrive through a batching worker: wait until the server has them, so their deletion is observable.
    assert _eventually(lambda: asyncio.run(_artifacts_and_logs(done))[1] > 0)
    time.sleep(1.5)  # both runs are now > 1 s old
    second = 1 / 3600

    preview = asyncio.run(
        cleanup_runs(completed_older_than_h=second, failed_older_than_h=second, dry_run=True, tag=tag)
    )
    assert {r.id for r in preview.runs} == {done, failed}
    assert preview.deleted_runs == 0
    assert asyncio.run(_exists(done))
    assert asyncio.run(_exists(failed))
    assert "would delete 2 runs" in preview.summary()

    # Completed runs expire after a second, failed ones after 1000 h: only the completed one goes.
    report = asyncio.run(cleanup_runs(completed_older_than_h=second, failed_older_than_h=1000, tag=tag))
    assert [r.id for r in report.runs] == [done]
    assert report.deleted_runs == 1
    assert report.deleted_artifacts == 1
    assert report.deleted_logs >= 1
    assert not asyncio.run(_exists(done))
    assert asyncio.run(_exists(failed))
    assert asyncio.run(_artifacts_and_logs(done))[0] == 0
    # The server deletes a run's logs in a background job right after the run.
    assert _eventually(lambda: asyncio.run(_artifacts_and_logs(done)) == (0, 0))

    report = asyncio.run(cleanup_runs(failed_older_than_h=second, tag=tag))
    assert [(r.id, r.state) for r in report.runs] == [(failed, "Failed")]
    assert not asyncio.run(_exists(failed))


@pytest.mark.usefixtures("prefect_harness")
def test_cleanup_keeps_runs_younger_than_retention_and_rejects_bad_parameters() -> None:
    tag = f"retention-{uuid.uuid4().hex[:8]}"
    done, failed = _make_runs(tag)
    report = asyncio.run(cleanup_runs(tag=tag))  # defaults: 24 h and 48 h
    assert report.runs == []
    assert report.deleted_runs == 0
    assert asyncio.run(_exists(done))
    assert asyncio.run(_exists(failed))
    with pytest.raises(Exception, match="greater than 0"):
        asyncio.run(cleanup_runs(completed_older_than_h=-1, tag=tag))
