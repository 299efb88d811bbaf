"""The one Prefect task for running tests: `run_tests_task`, a thin wrapper over `run_test_suite`.

Declared with `tasks.step.step` (no cache: the same workspace path holds new code on every repair attempt; no
persisted result; no retries: a failing suite is a result, not a fault, and a missing sandbox is the
operator's to fix). Flows call it with `tasks.step.call_step`. Both callers use it: the `run_tests` flow (the
user's tree, `trusted_code=True` unless a patch is applied) and the pipeline (model-written code,
`trusted_code=False`). The result is the typed `TestRun`, whose digest is made stable for prompts.

Kept apart from the package's `__init__` so that the CLI's direct mode never imports Prefect.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.context import FlowRunContext, TaskRunContext

from tasks.step import step
from tasks.testing.report import TestReport, TestRun
from tasks.testing.runner import run_test_suite
from tasks.testing.sandbox import SandboxPolicy
from vibe.errors import InputError

__all__ = ["publish_test_artifacts", "run_tests_task", "show_replayed_tests"]

# Prefect artifact keys: lowercase letters, digits and dashes.
_ARTIFACT_KEY = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


@step("run-tests")  # retries=0: see the module docstring
def run_tests_task(
    workspace: Path,
    *,
    command: str | Sequence[str] | None = None,
    setup: str | None = None,
    trusted_code: bool = False,
    artifact_key: str | None = None,
    timeout_s: float = 900,
    memory_mb: int = 4096,
    env_cache_dir: Path | None = None,
    sandbox: SandboxPolicy = "required",
    shown_as: Path | None = None,
) -> TestRun:
    """Run the tests of `workspace` in the sandbox, on a disposable copy (see `tasks.testing.run_test_suite`).

    Callers pass the settings' part with `**runner_options(settings, timeout_s)`.

    Args:
        workspace: the checked-out project; it is only read.
        command: the test command; None detects it from the workspace's files.
        setup: a command installing the test dependencies (with network, into a cached virtualenv for Python).
        trusted_code: the user's own tree; leave False for anything the model wrote or edited.
        artifact_key: publish the run as a table artifact `<key>` and a markdown one `<key>-summary` (inside a
            flow or task run); None publishes nothing.
        timeout_s: wall-clock limit of the run.
        memory_mb: address-space limit of each process.
        env_cache_dir: where cached setup environments live.
        sandbox: `VIBE_SANDBOX`: "required" refuses untrusted code without bubblewrap, "unsafe" runs it.
        shown_as: the path the report, its artifacts and errors name for the workspace (see `run_test_suite`).

    Returns:
        The report with its markdown and its failure digest normalised against `workspace`; `ok` says whether
        the suite passed.

    Raises:
        InputError: bad input (see `run_test_suite`), or an `artifact_key` Prefect would refuse.
        SandboxUnavailableError: untrusted code, no working bubblewrap, and not `VIBE_SANDBOX=unsafe`.
    """
    if artifact_key is not None and not _ARTIFACT_KEY.fullmatch(artifact_key):
        raise InputError(f"artifact key {artifact_key!r}: use lowercase letters, digits and dashes (test-results)")
    report = run_test_suite(
        workspace, command=command, setup=setup, trusted_code=trusted_code, timeout_s=timeout_s,
        memory_mb=memory_mb, env_cache_dir=env_cache_dir, sandbox=sandbox, shown_as=shown_as,
    )  # fmt: skip
    if artifact_key is not None and (TaskRunContext.get() or FlowRunContext.get()) is not None:
        publish_test_artifacts(report, key=artifact_key)
    return TestRun.of(report, workspace=workspace if shown_as is None else shown_as)


def publish_test_artifacts(report: TestReport, *, key: str = "test-results") -> None:
    """Publish a test run as a table artifact (`<key>`) and a markdown summary (`<key>-summary`).

    The table and the summary carry the real paths and durations (only the digest for the model is normalised).
    Call it inside a flow or task run; `key` must be lowercase letters, digits and dashes.
    """
    outcome = "passed" if report.ok else "failed"
    description = f"Tests {outcome} in {report.duration_s:.1f} s: {report.summary or report.counts_line()}"
    rows = report.table_rows()
    if rows:
        create_table_artifact(table=rows, key=key, description=description)
    create_markdown_artifact(markdown=report.to_markdown(), key=f"{key}-summary", description=description)


def show_replayed_tests(report: TestReport, *, key: str) -> bool:
    """Publish a journaled test run's artifacts on the current flow run, unless it already shows them.

    A run resumed from its journal does not run the tests again; without this its flow run would show no test
    table. A crashed run re-run under its key is a new flow run (it gets the table, real durations as recorded);
    a run handed back and resumed is the same flow run, which already shows it from its first attempt (one
    API read, nothing published twice). Outside a flow run it does nothing.

    Returns:
        Whether the artifacts were published now.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return False
    shown = ArtifactFilter(
        key=ArtifactFilterKey(any_=[key]), flow_run_id=ArtifactFilterFlowRunId(any_=[context.flow_run.id])
    )
    with get_client(sync_client=True) as client:
        if client.read_artifacts(artifact_filter=shown, limit=1):
            return False
    publish_test_artifacts(report, key=key)
    return True
