"""The tests on the base commit, run once before the first attempt: the inventory the evidence compares with.

Cached per base commit and environment (`evidence.baseline_path`: the test command, the runner's Python, the
sandbox policy) under `VIBE_HOME/baselines/v1/`, and journaled as the run's `baseline` step, so a resumed run
and later runs on the same commit never run it again.
"""

from __future__ import annotations

import sys

from tasks.pipeline.evidence import baseline_path, load_baseline, save_baseline
from tasks.pipeline.progress import say
from tasks.pipeline.run import PipelineRun
from tasks.step import call_step
from tasks.testing.prefect_tasks import run_tests_task
from tasks.testing.report import TestReport
from tasks.testing.runner import runner_options
from vibe.errors import InputError

__all__ = ["run_baseline"]


def _environment(run: PipelineRun) -> str:
    options = runner_options(run.settings)
    return "\0".join(
        [run.test_command or "(detected)", sys.version, str(options["sandbox"]), str(options["timeout_s"])]
    )


def run_baseline(run: PipelineRun) -> TestReport | None:
    """The base commit's test report (journaled, cached, else run now on a copy of the untouched workspace).

    Must be called before the first attempt writes into `run.workspace`. None when the base has no tests the
    runner can find (then there is nothing to compare with).
    """
    persisted = run.journal.get("baseline", TestReport)
    if persisted is not None:
        return persisted
    path = baseline_path(run.settings.home, base_commit=run.changes.base_commit, environment=_environment(run))
    report = load_baseline(path)
    if report is None:
        say("running the tests on the base commit once (the evidence compares every attempt with it)")
        try:
            # The user's committed code, not the model's: trusted, still on a disposable copy of the workspace.
            report = call_step(
                run_tests_task, run.workspace, command=run.test_command, trusted_code=True,
                **runner_options(run.settings),
            ).report  # fmt: skip
        except InputError as exc:
            say(f"no baseline: {exc}")
            return None
        save_baseline(path, report)
    run.journal.put("baseline", report)
    return report
