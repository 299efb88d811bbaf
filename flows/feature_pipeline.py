"""feature_pipeline: request -> index -> context -> attempts (generate, apply, test, repair) -> patch -> PR -> summary.

Orchestration only; the work is in `tasks/` (`tasks/pipeline/` for the pipeline's own steps). Every finished
step is written to the run's journal under the request key before the next starts, so re-running a crashed run
with the same key replays finished steps (no repeated LLM call, no second pull request) and continues.

Called from Python it is a plain function call (`feature_pipeline(request=..., repo_path=...)`) and runs as a
Prefect flow; `feature_pipeline.fn(...)` runs the same steps as plain functions without starting Prefect
(`flows._dispatch.run_flow` picks one of the two, as `vibe run` does).
Settings are never a parameter: they come from `vibe.settings.current_settings()` (see `use_settings`).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from tasks.codegen.prefect_tasks import open_provider_manager
from tasks.indexing.prefect_tasks import index_repository_task
from tasks.pipeline.attempt import run_attempts
from tasks.pipeline.context import build_context
from tasks.pipeline.journal import RunJournal, request_key
from tasks.pipeline.outcome import RunSummary
from tasks.pipeline.preflight import preflight, resolve_repo
from tasks.pipeline.progress import Progress
from tasks.pipeline.publish import publish_changes, write_patch
from tasks.pipeline.report import finish, replay_finished
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
) -> RunSummary:
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
        The run's summary (`status`, `attempts`, `tests`, `pr`, `cost_usd`, `patch`, `resumed`, ...).

    Raises:
        InputError: an unusable repository, or a refused edit (`UnsafeEditError`).
    """
    settings = current_settings()
    repo = resolve_repo(repo_path)
    # JSON escaping can double a reply's size: an entry may hold a reply at the cap, and nothing larger.
    journal = RunJournal(settings.home, key or request_key(request, repo), max_entry_bytes=2 * settings.max_reply_bytes)
    collect_leftovers(repo)  # what runs that died (SIGKILL, OOM) left: scratch directories, registered worktrees
    with journal.exclusive(fresh=fresh):
        if (finished := replay_finished(journal)) is not None:
            return finished
        base_commit = journal.get("base")
        preflight(repo, settings, publish=open_pr and not journal.has("pr"), model=model)
        progress = Progress(journal.key, first_stage="indexing the repository")
        call_step(index_repository_task, repo)
        with open_workspace(repo, ref=base_commit or "HEAD") as workspace, open_provider_manager(settings) as llm:
            if base_commit is None:
                journal.put("base", workspace.base_commit)
            progress.advance(10, "gathering context")
            context = build_context(repo, request, workspace.path, settings=settings, manager=llm)
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
        return finish(run, persist=True).model_copy(update={"resumed": base_commit is not None})
