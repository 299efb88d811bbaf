"""feature_pipeline: request -> index -> generate -> apply -> test -> repair -> pull request -> summary.

Orchestration only; the work is in `tasks/`. Every finished step is written to the run's journal under the
request key before the next starts, so re-running a crashed run with the same key replays finished steps
(no repeated LLM call, no second pull request) and continues where it stopped.

Called from Python it is a plain function call (`feature_pipeline(request=..., repo_path=...)`) and runs as a
Prefect flow; `vibe run` without a Prefect API calls `feature_pipeline.fn(...)`, which runs the same steps
as plain functions without starting Prefect. Settings are never a parameter (see `vibe.settings.use_settings`).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.context import FlowRunContext

from tasks.codegen.apply import UnsafeEditError
from tasks.codegen.budget import Budget
from tasks.codegen.generate import (
    CodeContext,
    Generation,
    charge,
    check_budget,
    prompt_tokens_for,
    read_context_files,
)
from tasks.codegen.journal import RunJournal, request_key
from tasks.codegen.prompt import (
    Exchange,
    build_messages,
    describe_edit_problems,
    describe_test_failures,
    with_current_files,
)
from tasks.codegen.report import (
    PipelineOutcome,
    pr_summary,
    pr_title,
    render_run_markdown,
)
from tasks.codegen.steps import (
    AppliedReply,
    apply_reply_task,
    ask_model_task,
    call_step,
    check_publishable,
    gather_context_task,
    index_repo_task,
    publish_pr_task,
    require_sandbox,
    run_tests_task,
)
from tasks.workspace import ChangeSet, build_change_tree, change_patch, collect_leftovers, open_workspace
from vibe.errors import BudgetExceededError, InputError
from vibe.settings import current_settings

_log = logging.getLogger("vibe.pipeline")


def _artifact_key(kind: str, key: str) -> str:
    # Prefect artifact keys allow lowercase letters, digits and dashes only.
    return f"pipeline-{kind}-" + re.sub(r"[^a-z0-9-]+", "-", key.lower()).strip("-")


def _in_flow() -> bool:
    return FlowRunContext.get() is not None


def _say(message: str) -> None:
    if _in_flow():
        from prefect.logging import get_run_logger

        get_run_logger().info(message)
    else:
        _log.info(message)


class _Progress:
    """One Prefect progress artifact per run, advanced through the stages (log lines outside a flow run)."""

    def __init__(self, key: str) -> None:
        self._id: Any = None
        if _in_flow():
            from prefect.artifacts import create_progress_artifact

            self._id = create_progress_artifact(
                0.0, key=_artifact_key("progress", key), description="feature_pipeline progress"
            )

    def advance(self, percent: float, stage: str) -> None:
        _say(f"[{percent:3.0f}%] {stage}")
        if self._id is not None:
            from prefect.artifacts import update_progress_artifact

            update_progress_artifact(self._id, min(max(percent, 0.0), 100.0), description=stage)


def _record_markdown(key: str, markdown: str) -> None:
    if _in_flow():
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(markdown, key=_artifact_key("summary", key), description="feature_pipeline outcome")


def _run_id() -> str | None:
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None
    return str(context.flow_run.id)


@flow(name="feature_pipeline", persist_result=False, validate_parameters=False)
def feature_pipeline(
    request: str,
    repo_path: str | Path,
    model: str | None = None,
    max_attempts: int | None = None,
    open_pr: bool = True,
    github_repo: str | None = None,
    key: str | None = None,
    base: str | None = None,
    test_command: str | None = None,
    fresh: bool = False,
) -> dict[str, Any]:
    """Turn a request into tested changes and a pull request.

    Args:
        request: what to change, in plain words.
        repo_path: the git repository (its committed HEAD is the starting point; the working tree is untouched).
        model: alias, role or `provider:model` (default: `settings.model`).
        max_attempts: generate-test rounds before giving up (default: `settings.max_attempts`).
        open_pr: open or update a pull request at the end (draft when the tests still fail, by policy).
        github_repo: `owner/name` on GitHub (default: from the `origin` remote; local mode without GitHub).
        key: the request key (default: derived from the request and the repository); runs with the same key
            resume each other.
        base: the pull request's base branch (default: the repository's default).
        test_command: the test command (default: detected from the repository's files).
        fresh: forget what earlier runs under the same key finished and start over.

    Settings come from `vibe.settings.current_settings()`: what the caller handed in with `use_settings`, else
    the environment (a deployed run).

    Returns:
        The summary: `status` (`passed`, `failed`, `budget_exceeded`), `attempts`, `tests` (`passed`, `failed`),
        `pr` (or None), `cost_usd`, `tokens`, `usage` per provider, `run_id`, `key`, `patch` (the change as a
        git patch file), `resumed` and `summary_path`.

    Raises:
        InputError: the repository or a reply's edits are unusable (`UnsafeEditError` for a refused edit).
    """
    settings = current_settings()
    model = model or settings.model
    attempts_allowed = max_attempts or settings.max_attempts
    repo = Path(repo_path).expanduser().resolve()
    if not repo.is_dir():
        raise InputError(f"{repo} is not a directory: pass the path of a git repository with --repo")
    key = key or request_key(request, repo)
    # JSON escaping can double a reply's size: an entry may hold a reply at the cap, and nothing larger.
    journal = RunJournal(settings.home, key, max_entry_bytes=2 * settings.max_reply_bytes)
    # What runs that died (SIGKILL, OOM) left behind: their scratch directories and registered worktrees.
    collect_leftovers(repo)
    with journal.exclusive():
        if fresh:
            journal.clear()
        finished = journal.get("summary")
        if finished is not None:
            _say(f"run {key} already finished; returning its summary (pass fresh=True / --fresh to run it again)")
            return {**finished, "resumed": True}
        resumed = bool(journal.get("base"))
        if open_pr and journal.get("pr") is None:
            check_publishable(repo)
        require_sandbox(settings)
        progress = _Progress(key)
        progress.advance(0, "indexing the repository")
        call_step(index_repo_task, repo)
        base_commit = journal.get("base")
        with open_workspace(repo, ref=base_commit or "HEAD") as workspace:
            if base_commit is None:
                journal.put("base", workspace.base_commit)
            # The pipeline's own record of the edits `apply` validated: the patch and the PR come from it alone.
            changes = ChangeSet(base_commit=workspace.base_commit)
            progress.advance(10, "gathering context")
            context: CodeContext = call_step(gather_context_task, repo, request, workspace.path, settings)
            budget = Budget(max_tokens=settings.budget_tokens, max_usd=settings.budget_usd)
            outcome = PipelineOutcome(request=request, model=model, key=key, max_attempts=attempts_allowed)
            history: list[Exchange] = []
            prompt_tokens = prompt_tokens_for(model)
            span = 70 / attempts_allowed
            for attempt in range(1, attempts_allowed + 1):
                start = 15 + span * (attempt - 1)
                progress.advance(start, f"attempt {attempt}/{attempts_allowed}: asking {model}")
                persisted = journal.get(f"generate:{attempt}")
                if persisted is not None:
                    generation = Generation.from_json_dict(persisted)
                    charge(budget, generation)
                    _say(f"attempt {attempt}: the model's reply comes from the run's journal (no new LLM call)")
                else:
                    messages = build_messages(
                        request,
                        budget_tokens=prompt_tokens,
                        repo_map=context.repo_map,
                        related=context.related,
                        history=history,
                    )
                    try:
                        check_budget(budget, messages, model=model)
                    except BudgetExceededError as exc:
                        outcome.stop(str(exc))
                        _say(str(exc))
                        break
                    generation = call_step(ask_model_task, messages, settings, model)
                    charge(budget, generation)
                    journal.put(f"generate:{attempt}", generation.to_json_dict())
                outcome.models.add(generation.model)
                progress.advance(start + span / 3, f"attempt {attempt}/{attempts_allowed}: applying edits")
                try:
                    applied: AppliedReply = call_step(apply_reply_task, workspace.path, generation.reply)
                except UnsafeEditError as exc:
                    outcome.refuse(attempt, str(exc))
                    _finish(outcome, budget, journal, progress, persist=False)
                    raise
                changes = changes.with_changes(applied.contents)
                if applied.problems:
                    outcome.add_attempt(attempt, written=[], problems=list(applied.problems), tests=None)
                    feedback = describe_edit_problems(
                        list(applied.problems), attempt=attempt, max_attempts=attempts_allowed
                    )
                else:
                    progress.advance(start + 2 * span / 3, f"attempt {attempt}/{attempts_allowed}: running the tests")
                    tests = journal.get(f"tests:{attempt}")
                    if tests is not None:
                        _say(f"attempt {attempt}: test results come from the run's journal")
                    else:
                        tests = call_step(run_tests_task, workspace.path, settings, test_command)
                        journal.put(f"tests:{attempt}", tests)
                    outcome.add_attempt(attempt, written=list(applied.written), problems=[], tests=tests)
                    if tests["ok"]:
                        break
                    feedback = describe_test_failures(tests["digest"], attempt=attempt, max_attempts=attempts_allowed)
                changed = read_context_files(workspace.path, sorted(changes.changes))
                history.append(
                    Exchange(
                        reply=generation.reply,
                        feedback=with_current_files(feedback, changed, budget_tokens=prompt_tokens // 3),
                    )
                )
            tree = build_change_tree(repo, changes.base_commit, changes.changes)
            patch = change_patch(repo, changes.base_commit, tree)
            outcome.changed_files = _patched_files(patch)
            journal.directory.mkdir(parents=True, exist_ok=True)
            patch_path = journal.directory / "changes.patch"
            patch_path.write_text(patch, encoding="utf-8")
            outcome.patch_path = str(patch_path)
            progress.advance(85, "publishing the pull request" if open_pr else "skipping the pull request (--no-pr)")
            if open_pr and outcome.changed_files:
                pr = journal.get("pr")
                if pr is None:
                    pr = call_step(
                        publish_pr_task,
                        repo,
                        changes,
                        title=pr_title(request),
                        body_args={
                            "request": request,
                            "summary": pr_summary(outcome),
                            "tests_markdown": outcome.last_tests_markdown(),
                            "model": ", ".join(sorted(outcome.models)) or model,
                            "tokens": budget.tokens,
                            "cost_usd": budget.cost_usd,
                            "key": key,
                        },
                        key=key,
                        base=base,
                        tests_passed=outcome.tests_ok,
                        github_repo=github_repo,
                        settings=settings,
                    )
                    journal.put("pr", pr)
                outcome.pr = pr
        summary = _finish(outcome, budget, journal, progress, persist=True)
        return {**summary, "resumed": resumed}


def _patched_files(patch: str) -> list[str]:
    # `diff --git a/<path> b/<path>` headers of the record's own patch (no renames: both names are the same).
    prefix = "diff --git a/"
    return sorted({line[len(prefix):].split(" b/", 1)[0] for line in patch.splitlines() if line.startswith(prefix)})


def _finish(
    outcome: PipelineOutcome, budget: Budget, journal: RunJournal, progress: _Progress, *, persist: bool
) -> dict[str, Any]:
    summary = outcome.to_summary(budget, run_id=_run_id())
    markdown = render_run_markdown(outcome, budget)
    journal.directory.mkdir(parents=True, exist_ok=True)
    summary_path = journal.directory / "summary.md"
    summary_path.write_text(markdown, encoding="utf-8")
    summary["summary_path"] = str(summary_path)
    _record_markdown(outcome.key, markdown)
    if persist:
        journal.put("summary", summary)
    progress.advance(100, f"done: {summary['status']}")
    return summary
