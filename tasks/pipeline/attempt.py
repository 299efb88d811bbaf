"""The pipeline's repair loop: `run_attempt` is one generate -> apply -> test -> feedback round.

Each finished step goes to the run's journal before the next starts (`baseline`, `generate:N`, `tests:N`); a
re-run under the same key takes them from there instead of asking the model or running the tests again.

Before the first attempt the tests run once on the base commit (`baseline.run_baseline`); every attempt's run
is compared with it (`evidence.compare`), and an attempt passes only when its suite passes and no test that
passed before is broken or gone. What the final patch holds is decided in `changes.py`.
"""

from __future__ import annotations

from tasks.codegen.apply import AppliedReply, UnsafeEditError
from tasks.codegen.generate import Generation, charge, check_budget, read_context_files
from tasks.codegen.paths import PathRules
from tasks.codegen.prefect_tasks import apply_reply_task, ask_model_task
from tasks.codegen.prompt import (
    Exchange,
    build_messages,
    describe_edit_problems,
    describe_lost_tests,
    describe_test_failures,
    with_current_files,
)
from tasks.codegen.wholefile import wants_shrink
from tasks.pipeline.baseline import run_baseline
from tasks.pipeline.changes import drop_stale_files
from tasks.pipeline.evidence import compare, request_allows_test_changes
from tasks.pipeline.outcome import AttemptRecord
from tasks.pipeline.progress import say
from tasks.pipeline.report import finish
from tasks.pipeline.run import PipelineRun
from tasks.step import artifact_key, call_step
from tasks.testing.prefect_tasks import run_tests_task, show_replayed_tests
from tasks.testing.report import TestRun
from tasks.testing.runner import runner_options
from vibe.errors import BudgetExceededError

__all__ = ["run_attempt", "run_attempts"]


def run_attempts(run: PipelineRun) -> None:
    """Attempts until the tests pass, the attempts run out, or the budget does (`outcome.stopped` says so).

    Raises:
        UnsafeEditError: a reply asked for a refused edit; the run's summary is written (not journaled) first.
    """
    run.baseline = run_baseline(run)
    for number in range(1, run.max_attempts + 1):
        try:
            record = run_attempt(run, number)
        except BudgetExceededError as exc:
            run.outcome.stop(str(exc))
            say(str(exc))
            return
        except UnsafeEditError:
            finish(run, persist=False)
            raise
        if record.ok:
            drop_stale_files(run, test=_test)
            return


def run_attempt(run: PipelineRun, number: int) -> AttemptRecord:
    """Attempt `number`: ask the model (or replay its journaled reply), apply the edits, run the tests.

    The attempt is appended to `run.outcome`; when it did not pass, the feedback for the next one (the edit
    problems or the failing tests, with the files as they are now) is appended to `run.history`.

    Raises:
        BudgetExceededError: the budget does not allow this attempt's LLM call (nothing was sent).
        UnsafeEditError: the reply asked for a refused edit (recorded in `run.outcome`; nothing was written).
    """
    span = 70 / run.max_attempts
    start = 15 + span * (number - 1)
    label = f"attempt {number}/{run.max_attempts}"
    run.progress.advance(start, f"{label}: asking {run.model}")
    generation = _generate(run, number)
    run.outcome.models.add(generation.model)
    run.progress.advance(start + span / 3, f"{label}: applying edits")
    applied = _apply(run, number, generation.reply)
    if applied.problems:
        record = AttemptRecord(number=number, problems=applied.problems, notes=applied.notes)
        feedback = describe_edit_problems(list(applied.problems), attempt=number, max_attempts=run.max_attempts)
    else:
        run.progress.advance(start + 2 * span / 3, f"{label}: running the tests")
        tests = _test(run, f"tests:{number}")
        evidence = compare(run.baseline, tests.report, allow_changes=request_allows_test_changes(run.request))
        record = AttemptRecord(
            number=number, written=applied.written, tests=tests, created=applied.created, notes=applied.notes,
            evidence=evidence,
        )  # fmt: skip
        feedback = _test_feedback(tests, record, run.max_attempts)
    run.outcome.attempts.append(record)
    if not record.ok:
        changed = read_context_files(run.workspace, sorted(run.changes.changes))
        current = with_current_files(feedback, changed, budget_tokens=run.prompt_tokens // 3)
        run.history.append(Exchange(reply=generation.reply, feedback=current))
    return record


def _apply(run: PipelineRun, number: int, reply: str) -> AppliedReply:
    """Apply a reply onto the tree the previous attempts left (what the model was shown), recording it."""
    # Paths as the model may write them: the repository's name in front, the user's absolute path.
    rules = PathRules(repo_name=run.repo.name, aliases=(run.repo,), outside="problem")
    try:
        applied = call_step(apply_reply_task, run.workspace, reply, rules=rules, allow_shrink=wants_shrink(run.request))
    except UnsafeEditError as exc:
        run.outcome.refuse(number, str(exc))
        raise
    run.changes = run.changes.with_changes(applied.contents)
    return applied


def _test_feedback(tests: TestRun, record: AttemptRecord, max_attempts: int) -> str:
    evidence = record.evidence
    if tests.ok and evidence is not None and not evidence.ok:
        return describe_lost_tests(evidence.removed, evidence.skipped, attempt=record.number, max_attempts=max_attempts)
    pre_existing = evidence.pre_existing if evidence is not None else ()
    return describe_test_failures(
        tests.digest, attempt=record.number, max_attempts=max_attempts, pre_existing=pre_existing
    )


def _generate(run: PipelineRun, number: int) -> Generation:
    step = f"generate:{number}"
    persisted = run.journal.get(step, Generation)
    if persisted is not None:
        charge(run.budget, persisted)
        say(f"attempt {number}: the model's reply comes from the run's journal (no new LLM call)")
        return persisted
    context = run.context
    messages = build_messages(
        run.request,
        budget_tokens=run.prompt_tokens,
        repo_map=context.repo_map,
        related=context.related,
        history=run.history,
    )
    check_budget(run.budget, messages, model=run.model)
    generation = call_step(ask_model_task, messages, run.model, settings=run.settings, manager=run.manager)
    charge(run.budget, generation)
    run.journal.put(step, generation)
    return generation


def _test(run: PipelineRun, step: str) -> TestRun:
    """The tests of the workspace as it is now, journaled as `step` (taken from the journal on a re-run)."""
    key = artifact_key("pipeline", step, run.journal.key)
    persisted = run.journal.get(step, TestRun)
    if persisted is not None:
        say(f"{step}: test results come from the run's journal")
        show_replayed_tests(persisted.report, key=key)  # a resumed run still shows its test table
        return persisted
    # The model wrote this code: it runs only in the sandbox (a refusal without bubblewrap, unless VIBE_SANDBOX=unsafe).
    tests = call_step(
        run_tests_task,
        run.workspace,
        command=run.test_command,
        trusted_code=False,
        artifact_key=key,
        **runner_options(run.settings),
    )
    run.journal.put(step, tests)
    return tests
