"""feature_pipeline: request -> index -> context -> attempts (generate, apply, test, repair) -> patch -> PR -> summary.

Orchestration only; the work is in `tasks/` (`tasks/pipeline/` for the pipeline's own steps). Every finished
step is written to the run's journal under the request key before the next starts, so re-running a crashed run
with the same key replays finished steps (no repeated LLM call, no second pull request) and continues.

Called from Python it is a plain function call (`feature_pipeline(request=..., repo_path=...)`) and runs as a
Prefect flow; `feature_pipeline.fn(...)` runs the same steps as plain functions without starting Prefect.
Settings are never a parameter: they come from `vibe.settings.current_settings()` (see `use_settings`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from tasks.codegen.prefect_tasks import gather_context_task, open_provider_manager
from tasks.indexing.prefect_tasks import index_repository_task
from tasks.pipeline.attempt import run_attempts
from tasks.pipeline.journal import RunJournal, request_key
from tasks.pipeline.outcome import RunSummary
from tasks.pipeline.preflight import check_publishable, require_sandbox, resolve_repo
from tasks.pipeline.progress import Progress, say
from tasks.pipeline.publish import publish_changes, write_patch
from tasks.pipeline.report import finish
from tasks.pipeline.run import PipelineRun
from tasks.step import call_step
from tasks.workspace import collect_leftovers, open_workspace
from vibe.settings import current_settings


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
        key: the request key (default: from the request and the repository); runs with one key resume each other.
        base: the pull request's base branch (default: the repository's default).
        test_command: the test command (default: detected from the repository's files).
        fresh: forget what earlier runs under the same key finished and start over.

    Returns:
        The `RunSummary` as JSON: `status` (`passed`, `failed`, `budget_exceeded`, `refused`), `attempts`,
        `tests`, `pr`, `cost_usd`, `tokens`, `usage`, `run_id`, `key`, `patch`, `resumed`, `summary_path`, ...

    Raises:
        InputError: the repository or a reply's edits are unusable (`UnsafeEditError` for a refused edit).
    """
    settings = current_settings()
    repo = resolve_repo(repo_path)
    # JSON escaping can double a reply's size: an entry may hold a reply at the cap, and nothing larger.
    journal = RunJournal(settings.home, key or request_key(request, repo), max_entry_bytes=2 * settings.max_reply_bytes)
    collect_leftovers(repo)  # what runs that died (SIGKILL, OOM) left: scratch directories, registered worktrees
    with journal.exclusive():
        if fresh:
            journal.clear()
        finished = journal.get("summary", RunSummary)
        if finished is not None:
            say(f"run {journal.key} already finished; returning its summary (fresh=True / --fresh runs it again)")
            return finished.model_copy(update={"resumed": True}).model_dump(mode="json")
        resumed = journal.has("base")
        if open_pr and not journal.has("pr"):
            check_publishable(repo)
        require_sandbox(settings)
        progress = Progress(journal.key)
        progress.advance(0, "indexing the repository")
        call_step(index_repository_task, repo)
        base_commit = journal.get("base")
        with open_workspace(repo, ref=base_commit or "HEAD") as workspace, open_provider_manager(settings) as llm:
            if base_commit is None:
                journal.put("base", workspace.base_commit)
            progress.advance(10, "gathering context")
            context = call_step(gather_context_task, repo, request, workspace.path, settings)
            run = PipelineRun.start(
                request=request, model=model or settings.model, max_attempts=max_attempts or settings.max_attempts,
                settings=settings, manager=llm, journal=journal, repo=repo, workspace=workspace.path,
                base_commit=workspace.base_commit, context=context, test_command=test_command, progress=progress,
            )  # fmt: skip
            run_attempts(run)
            write_patch(run)
            progress.advance(85, "publishing the pull request" if open_pr else "skipping the pull request (--no-pr)")
            if open_pr and run.outcome.changed_files:
                run.outcome.pr = publish_changes(run, base=base, github_repo=github_repo)
        summary = finish(run, persist=True)
        return summary.model_copy(update={"resumed": resumed}).model_dump(mode="json")
