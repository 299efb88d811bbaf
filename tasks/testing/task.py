"""Prefect wrappers of the test runner: the task and the artifacts a test run publishes.

Kept apart from the package's `__init__` so that the CLI's direct mode never imports Prefect.
"""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from tasks.testing.report import TestReport
from tasks.testing.runner import run_test_suite

__all__ = ["publish_test_artifacts", "run_test_suite_task"]

# No retries: a failing suite is a result, not a fault. No cache: the same workspace path holds new code on
# every repair attempt of a pipeline run.
run_test_suite_task = task(name="run_test_suite", cache_policy=NO_CACHE, retries=0)(run_test_suite)


def publish_test_artifacts(report: TestReport, *, key: str = "test-results") -> None:
    """Publish a test run as a table artifact (`<key>`) and a markdown summary (`<key>-summary`).

    Call it inside a flow or task run; `key` must be lowercase letters, digits and dashes.
    """
    description = f"Tests {'passed' if report.ok else 'failed'}: {report.summary or report.counts_line()}"
    rows = report.table_rows()
    if rows:
        create_table_artifact(table=rows, key=key, description=description)
    create_markdown_artifact(markdown=report.to_markdown(), key=f"{key}-summary", description=description)
