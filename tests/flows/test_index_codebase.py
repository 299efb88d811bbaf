"""The `index_codebase` flow under a real Prefect server: the result, the progress and the summary artifacts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from flows.index_codebase import index_codebase
from tests.tasks.indexing.conftest import git, write

pytestmark = pytest.mark.slow


def _artifacts(run_id: object, kinds: set[str], timeout: float = 20.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            found = client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
            )
        if kinds <= {a.type for a in found} or time.monotonic() > deadline:
            return list(found)
        time.sleep(0.2)


def test_the_flow_indexes_and_reports_progress_and_a_summary(prefect_harness: None, tmp_path: Path) -> None:
    repo = tmp_path / "shop"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write(repo, {f"orders/order_{i}.py": f"def place_order_{i}(cart):\n    return cart\n" for i in range(60)})
    write(repo, {"broken.txt": b"caf\xe9\n", "logo.png": b"\0PNG"})
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "shop")

    state = index_codebase(str(repo), return_state=True)
    result = state.result().as_dict()
    assert result == result | {"files": 61, "changed": 62, "symbols": 60, "skipped": 1}
    assert list(result) == ["files", "changed", "symbols", "chunks", "skipped", "elapsed_s"]

    run_id = state.state_details.flow_run_id
    artifacts = _artifacts(run_id, {"progress", "markdown"})
    progress = [a for a in artifacts if a.type == "progress"]
    assert progress
    assert float(progress[0].data) == 100.0
    assert progress[0].description == "61/61 files analysed"
    summary = next(str(a.data) for a in artifacts if a.type == "markdown")
    assert "| 61 | 62 | 60 |" in summary
    assert "binary: 1" in summary
    assert "broken.txt: invalid UTF-8" in summary

    again = index_codebase(str(repo))
    assert again.changed == 0
    assert again.files == 61


def test_the_flow_reports_a_non_git_directory_as_a_failed_run(prefect_harness: None, tmp_path: Path) -> None:
    from vibe.errors import InputError

    with pytest.raises(InputError, match="not inside a git repository"):
        index_codebase(str(tmp_path))


def test_vibe_index_runs_the_tracked_flow_when_a_prefect_api_is_configured(
    prefect_harness: None, tmp_path: Path
) -> None:
    import json

    from prefect.settings import PREFECT_API_URL
    from typer.testing import CliRunner

    import cli.index  # noqa: F401 - registers the commands
    from cli._app import app

    repo = tmp_path / "tracked"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write(repo, {"app.py": "def tracked_entry():\n    return 1\n"})
    api_url = PREFECT_API_URL.value()
    assert api_url
    result = CliRunner().invoke(app, ["index", str(repo), "--json"], env={"PREFECT_API_URL": api_url})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) | {"elapsed_s": 0} == {
        "files": 1, "changed": 1, "symbols": 1, "chunks": 1, "skipped": 0, "elapsed_s": 0, "skipped_files": []
    }
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
    assert any(run.parameters.get("repo_path") == str(repo) for run in runs)
