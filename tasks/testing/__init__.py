"""Sandboxed test runs of any repository with structured, per-test results.

Public API:
    run_test_suite(workspace, *, command=None, timeout_s=900, memory_mb=4096, setup=None,
                   rerun_failures=True, ..., sandbox="required", trusted_code=False) -> TestReport
        runs on a disposable copy of the workspace; only the report comes back.
    SandboxUnavailableError: untrusted code, no working bubblewrap, and not `VIBE_SANDBOX=unsafe`.
    TestReport, TestCaseResult: the results, with JSON, markdown and failure-digest renderings.
    detect_runner(workspace): which runner a workspace's files call for.
    bwrap_available(): None when bubblewrap isolation works on this machine, else why not.

The Prefect task wrapper lives in `tasks.testing.task` (`run_test_suite_task`), so that importing this
package does not import Prefect.
"""

from __future__ import annotations

from tasks.testing.detect import TestPlan, detect_runner, plan_tests
from tasks.testing.report import TestCaseResult, TestReport
from tasks.testing.runner import RunnerOptions, run_test_suite, runner_options
from tasks.testing.sandbox import Limits, SandboxPolicy, SandboxUnavailableError, bwrap_available

__all__ = [
    "Limits",
    "RunnerOptions",
    "SandboxPolicy",
    "SandboxUnavailableError",
    "TestCaseResult",
    "TestPlan",
    "TestReport",
    "bwrap_available",
    "detect_runner",
    "plan_tests",
    "run_test_suite",
    "runner_options",
]
