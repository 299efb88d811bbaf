"""The run_tests flow on a real Prefect server (test harness): a patch, a sandboxed run, artifacts."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path
from uuid import UUID

import pytest

from flows.run_tests import run_tests
from tasks.testing import TestReport
from vibe.errors import InputError


@pytest.fixture(autouse=True)
def git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commits in test repositories work on a machine without a global git identity."""
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "vibe tests")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "tests@vibe.invalid")


def make_repo(root: Path) -> Path:
    repo = root / "calc"
    repo.mkdir()
    (repo / "pyproject.toml").write_text('[project]\nname = "calc"\nversion = "0"\n')
    (repo / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (repo / "test_calc.py").write_text(
        textwrap.dedent(
            """
            from calc import add


            def test_add():
                assert add(2, 3) == 5


            def test_zero():
                assert add(0, 0) == 0
            """
        ).lstrip()
    )
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run(["git", "add", "."], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "buggy add"], cwd=repo, check=True)
    return repo


FIX = """--- a/calc.py
+++ b/calc.py
@@ -1,2 +1,2 @@
 def add(a, b):
-    return a - b
+    return a + b
"""


def artifacts_of(flow_run_id: UUID) -> dict[str, object]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {str(a.key): a.data for a in found}


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_flow_runs_the_patched_tests_and_publishes_artifacts(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    state = run_tests(str(repo), command=None, timeout_s=120, patch=FIX, return_state=True)  # type: ignore[call-overload]
    report = state.result()
    assert isinstance(report, TestReport)
    assert report.ok, report.failure_digest()
    assert report.passed == 2
    artifacts = artifacts_of(state.state_details.flow_run_id)
    assert {"test-results", "test-results-summary", "run-tests-progress"} <= set(artifacts)
    assert "Tests passed: 2 passed" in str(artifacts["test-results-summary"])
    assert "test_calc.py::test_add" in str(artifacts["test-results"])
    assert artifacts["run-tests-progress"] == 100.0
    # The user's checkout still has the bug: the patch went to the workspace only.
    assert "a - b" in (repo / "calc.py").read_text()
    assert subprocess.run(["git", "worktree", "list"], cwd=repo, capture_output=True, text=True).stdout.count("\n") == 1


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_flow_reports_failures_as_a_result(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    report = run_tests(str(repo), timeout_s=120)
    assert not report.ok
    outcomes = {t.id: t.outcome for t in report.tests}
    assert outcomes == {"test_calc.py::test_add": "failed", "test_calc.py::test_zero": "passed"}
    assert "FAILED test_calc.py::test_add" in report.failure_digest()


def test_reports_and_errors_name_the_users_repository_not_the_scratch_copy(tmp_path: Path) -> None:
    # The workspace is an exported copy in a scratch directory the user never sees: a skip reason, and the
    # "no tests" error, name the repository the user passed.
    repo = make_repo(tmp_path)
    (repo / "test_later.py").write_text("import pytest\n\n\ndef test_later():\n    pytest.skip('not yet')\n")
    report = run_tests.fn(str(repo), command=None, timeout_s=120, patch=FIX, include_uncommitted=True)
    skipped = next(t for t in report.tests if t.outcome == "skipped")
    assert skipped.message.startswith(f"{repo.resolve()}/test_later.py:"), skipped.message
    assert "vibe-ws-" not in report.model_dump_json()

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "README.md").write_text("nothing to test\n")
    subprocess.run(["git", "init", "-q"], cwd=empty, check=True)
    subprocess.run(["git", "add", "."], cwd=empty, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "docs"], cwd=empty, check=True)
    with pytest.raises(InputError, match="found no tests") as raised:
        run_tests.fn(str(empty))
    assert f"found no tests to run in {empty.resolve()}:" in str(raised.value)
