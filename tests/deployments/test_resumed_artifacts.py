# ruff: noqa: F811 - the test takes the fixtures of tests/flows/conftest.py, imported below, as parameters
"""A pipeline run resumed from its journal still shows its test tables, on a real Prefect server.

The first flow run generates, tests (attempt 1 fails, attempt 2 passes) and then fails at the pull request
(the fake GitHub answers 401). The second flow run under the same request key takes both generations and both
test runs from the journal and opens the pull request: it is a new flow run, and its artifacts must still hold
the test tables, under the same keys and with the durations the tests really took.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterName,
)
from prefect.client.schemas.objects import Artifact
from prefect.settings import PREFECT_API_URL, temporary_settings

from cli.demo import REQUEST
from deployments.localstack import LocalPrefect
from flows.feature_pipeline import feature_pipeline
from tests.demo_script import demo_responder
from tests.fakes.github_server import FakeGitHub
from tests.flows.conftest import github, project, run  # noqa: F401 - the pipeline's fixtures, reused
from tests.tasks.pull_requests.conftest import FULL_NAME
from vibe.errors import GitHubError
from vibe.settings import use_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPrefect]:
    with (
        LocalPrefect(tmp_path_factory.mktemp("resumed-artifacts")) as prefect,
        temporary_settings({PREFECT_API_URL: prefect.api_url}),
    ):
        yield prefect


def _tables(flow_run_id: uuid.UUID, expected: int, timeout: float = 60.0) -> dict[str, Artifact]:
    """The flow run's table artifacts by key, once `expected` of them are there."""
    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            artifacts = client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
            )
        tables = {a.key: a for a in artifacts if a.type == "table" and a.key}
        if len(tables) >= expected or time.monotonic() > deadline:
            return tables
        time.sleep(0.5)


def _rows(artifact: Artifact) -> list[dict[str, Any]]:
    import json

    data = artifact.data if isinstance(artifact.data, list) else json.loads(str(artifact.data))
    return list(data)


def _failed_run_id(name_prefix: str) -> uuid.UUID:
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_=name_prefix)))
    failed = [r.id for r in runs if r.state is not None and r.state.is_failed()]
    assert len(failed) == 1, runs
    return failed[0]


def test_a_pipeline_resumed_from_its_journal_shows_the_test_tables_of_the_first_run(
    server: LocalPrefect,
    run: Any,
    github: FakeGitHub,
    project: Path,
) -> None:
    llm, settings = run(demo_responder)
    github.fail("POST", r"/api/v3/repos/acme/widgets/pulls", 401, message="Bad credentials")
    first_name = f"first-{uuid.uuid4().hex[:8]}"
    with use_settings(settings), pytest.raises(GitHubError):
        feature_pipeline.with_options(flow_run_name=first_name)(
            request=REQUEST, repo_path=str(project), github_repo=FULL_NAME
        )
    first = _failed_run_id(first_name)
    first_tables = _tables(first, expected=2)
    assert len(first_tables) == 2, first_tables  # attempt 1 (fails) and attempt 2 (passes)

    with use_settings(settings):
        summary = feature_pipeline(request=REQUEST, repo_path=str(project), github_repo=FULL_NAME)
    assert summary.resumed is True
    assert summary.status == "passed"
    assert llm.calls() == 2  # both generations came from the journal: no test ran again either
    assert summary.run_id is not None
    assert uuid.UUID(str(summary.run_id)) != first

    resumed_tables = _tables(uuid.UUID(str(summary.run_id)), expected=2)
    assert sorted(resumed_tables) == sorted(first_tables)
    for key, table in resumed_tables.items():
        rows = _rows(table)
        assert rows, key
        assert rows == _rows(first_tables[key]), key  # the tests and durations the first run measured
        # "Tests passed in 1.3 s: ...": the suite's measured time, as the first run recorded it (the sample's
        # tests each take well under a millisecond, so their rows round to 0.0).
        assert table.description == first_tables[key].description
        match = re.match(r"Tests (passed|failed) in (\d+\.\d) s", table.description or "")
        assert match is not None, table.description
        assert float(match.group(2)) > 0, table.description
