"""The `run_tests` flow: a repository's tests at a ref (plus a patch) in a sandboxed, disposable workspace.

Inside a flow run it reports progress and publishes the results as artifacts; called through `.fn` (`vibe test`
without a Prefect API) it is the plain test run.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast
from uuid import UUID

from prefect import flow
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.context import FlowRunContext

from tasks.step import call_step
from tasks.testing.prefect_tasks import run_tests_task
from tasks.testing.report import TestReport
from tasks.testing.runner import runner_options
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
    progress = _Progress() if FlowRunContext.get() is not None else None
    with open_workspace(Path(repo_path), ref, include_uncommitted=include_uncommitted) as workspace:
        if patch:
            workspace.apply_patch(patch)
        if progress:
            progress.advance(20.0, "Running the tests")
        # With a patch the code is the pipeline's (the model's): untrusted, bubblewrap required.
        run = call_step(
            run_tests_task, workspace.path, command=command, setup=setup, trusted_code=patch is None,
            artifact_key="test-results" if progress else None, shown_as=workspace.repo,
            **runner_options(settings, timeout_s),
        )  # fmt: skip
    if progress:
        progress.advance(100.0, f"Done: {run.report.summary or run.report.counts_line()}")
    return run.report


class _Progress:
    """The run's progress artifact (inside a flow run only)."""

    def __init__(self) -> None:
        # Called from a synchronous flow, Prefect's sync/async helper returns the id itself.
        created = create_progress_artifact(0.0, key="run-tests-progress", description="Preparing the workspace")
        self._id = cast(UUID, created)

    def advance(self, percent: float, description: str) -> None:
        update_progress_artifact(self._id, percent, description=description)
