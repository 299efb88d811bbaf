"""Deprecated: the old Prefect wrapper of the test runner, kept until its last two callers switch.

`flows/run_tests.py` and `tasks/pipeline/attempt.py` still call `run_test_suite_task` (which returns a bare
`TestReport`); both are to call `tasks.testing.prefect_tasks.run_tests_task` (which returns a `TestRun`), after
which this module is deleted. New code imports from `tasks.testing.prefect_tasks`.
"""

from __future__ import annotations

from tasks.step import step
from tasks.testing.prefect_tasks import publish_test_artifacts
from tasks.testing.runner import run_test_suite

__all__ = ["publish_test_artifacts", "run_test_suite_task"]

run_test_suite_task = step("run_test_suite")(run_test_suite)
