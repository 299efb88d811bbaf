"""The one Prefect task for test runs: a typed, JSON round-tripping `TestRun`, artifacts under a key."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import pytest
from prefect import flow

from tasks.testing.prefect_tasks import run_tests_task
from tasks.testing.report import TestRun
from tests.tasks.testing.conftest import MakeRepo
from vibe.errors import InputError

FAILING = {
    "pyproject.toml": '[project]\nname = "calc"\nversion = "0"\n',
    "calc.py": "def add(a, b):\n    return a - b\n",
    "test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
}


def test_the_task_returns_a_typed_run_whose_digest_is_stable(make_repo: MakeRepo) -> None:
    repo = make_repo(FAILING)
    # Outside a flow run the task's function runs as it is (what `call_step` does), publishing nothing.
    run = run_tests_task.fn(repo, trusted_code=True, timeout_s=120, artifact_key="test-results")
    assert not run.ok
    assert run.report.failed == 1
    assert "FAILED test_calc.py::test_add" in run.digest
    # The digest for the model names no machine path and no timing; the report keeps both.
    assert str(repo) not in run.digest
    assert run.report.duration_s > 0
    assert TestRun.model_validate_json(run.model_dump_json()) == run
    with pytest.raises(InputError, match="artifact key"):
        run_tests_task.fn(repo, trusted_code=True, artifact_key="Test Results")


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_the_task_publishes_its_artifacts_under_the_key(make_repo: MakeRepo) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    repo = make_repo(FAILING)

    @flow
    def tests_of(path: Path) -> TestRun:
        return run_tests_task(path, trusted_code=True, timeout_s=120, artifact_key="attempt-1-tests")

    state = tests_of(repo, return_state=True)  # type: ignore[call-overload]
    assert not state.result().ok
    flow_run_id: UUID = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    artifacts = {str(a.key): a for a in found}
    assert {"attempt-1-tests", "attempt-1-tests-summary"} <= set(artifacts)
    assert "test_calc.py::test_add" in str(artifacts["attempt-1-tests"].data)
    assert "Tests failed in" in str(artifacts["attempt-1-tests"].description)
