"""The `run_tests` flow: a repository's tests at a ref (plus a patch) in a sandboxed, disposable workspace."""

from __future__ import annotations

from pathlib import Path
from typing import cast
from uuid import UUID

from prefect import flow
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from tasks.testing.report import TestReport
from tasks.testing.runner import runner_options
from tasks.testing.task import publish_test_artifacts, run_test_suite_task
from tasks.workspace import open_workspace
from vibe.settings import current_settings


@flow(name="run_tests")
def run_tests(
    repo_path: str,
    ref: str = "HEAD",
    command: str | None = None,
    timeout_s: float | None = None,
    patch: str | None = None,
    setup: str | None = None,
    include_uncommitted: bool = False,
) -> TestReport:
    """Run the tests of `repo_path` at `ref`, with `patch` applied, and publish the results as artifacts.

    Args:
        repo_path: a git repository on the machine running the flow.
        ref: the branch, tag or sha to test.
        command: the test command; None detects it from the repository's files.
        timeout_s: wall-clock limit; None uses the `VIBE_TEST_TIMEOUT_S` setting.
        patch: a git patch applied to the checkout before the run (the pipeline's changes).
        setup: a command installing the test dependencies (see `tasks.testing.run_test_suite`).
        include_uncommitted: also test the repository's uncommitted changes (for local runs).

    Returns:
        The test report; the run's artifacts hold the table of tests and a markdown summary.
    """
    # A deployed flow run is an entry point of its own: it reads its settings here, once.
    settings = current_settings()
    # Called from a synchronous flow, Prefect's sync/async helper returns the id itself.
    progress = cast(
        UUID, create_progress_artifact(progress=0.0, key="run-tests-progress", description="Preparing the workspace")
    )
    with open_workspace(Path(repo_path), ref, include_uncommitted=include_uncommitted) as workspace:
        if patch:
            workspace.apply_patch(patch)
        update_progress_artifact(progress, 20.0, description="Running the tests")
        # With a patch the code is the pipeline's (the model's): untrusted, bubblewrap required.
        report = run_test_suite_task(
            workspace.path, command=command, setup=setup, trusted_code=patch is None,
            **runner_options(settings, timeout_s),
        )  # fmt: skip
    update_progress_artifact(progress, 90.0, description="Publishing the results")
    publish_test_artifacts(report)
    update_progress_artifact(progress, 100.0, description=f"Done: {report.summary or report.counts_line()}")
    return report
