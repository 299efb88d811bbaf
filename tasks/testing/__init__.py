"""Sandboxed test runs of any repository with structured, per-test results.

Public API:
    run_test_suite(workspace, *, command=None, timeout_s=900, memory_mb=4096, setup=None,
                   rerun_failures=True, ..., sandbox="required", trusted_code=False) -> TestReport
        runs on a disposable copy of the workspace; only the report comes back.
    SandboxUnavailableError: untrusted code, no working bubblewrap, and not `VIBE_SANDBOX=unsafe`.
    TestReport, TestCaseResult: the results, with JSON, markdown and failure-digest renderings.
    TestRun: a report with its markdown and its digest for the model (`TestRun.of(report, workspace=...)`).
    TestRunner: the protocol of one kind of runner (`tasks.testing.runners`: pytest, cargo, go, npm, custom).
    detect_runner(workspace): which runner a workspace's files call for.
    bwrap_available(): None when bubblewrap isolation works on this machine, else why not.

The one Prefect task lives in `tasks.testing.prefect_tasks` (`run_tests_task -> TestRun`), so that importing
this package does not import Prefect.
"""

from __future__ import annotations

from tasks.testing.detect import TestPlan, detect_runner, plan_tests
from tasks.testing.report import TestCaseResult, TestReport, TestRun
from tasks.testing.runner import RunnerOptions, run_test_suite, runner_options
from tasks.testing.runners import TestRunner
from tasks.testing.sandbox import Limits, SandboxPolicy, SandboxUnavailableError, bwrap_available

__all__ = [
    "Limits",
    "RunnerOptions",
    "SandboxPolicy",
    "SandboxUnavailableError",
    "TestCaseResult",
    "TestPlan",
    "TestReport",
    "TestRun",
    "TestRunner",
    "bwrap_available",
    "detect_runner",
    "plan_tests",
    "run_test_suite",
    "runner_options",
]
