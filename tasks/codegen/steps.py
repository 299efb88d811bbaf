"""The pipeline's steps as thin Prefect tasks over the plain functions of `tasks/`.

Retries: only faults an outside system calls retryable are retried, and never where another layer already
retries them: LLM calls (the ProviderManager retries and fails over) and GitHub calls (the GitHub adapter
retries) get no task retries at all. Results are not persisted by Prefect: the pipeline keeps its own journal
(`journal.py`) keyed by the request, which is what makes a re-run resume.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.context import FlowRunContext, TaskRunContext
from prefect.utilities.asyncutils import run_coro_as_sync

from providers.base import Message
from tasks.codegen.apply import DEFAULT_MAX_FILE_BYTES, apply_edits
from tasks.codegen.generate import CodeContext, Generation, ask_model, gather_context, normalise_output
from tasks.codegen.parser import parse_reply
from tasks.workspace import ChangeSet
from vibe.errors import ExternalError, GitHubError, InputError, ProviderError
from vibe.settings import Settings

P = ParamSpec("P")
R = TypeVar("R")


def call_step(step: Task[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Call a step: a tracked task run inside a flow run, a plain function call outside one.

    Outside a flow run (a flow called through `.fn`, as the CLI does without a Prefect API) calling a task
    would make Prefect start a temporary server just to record it; the plain call does the same work.
    """
    if FlowRunContext.get() is not None:
        return step(*args, **kwargs)
    return step.fn(*args, **kwargs)


def check_publishable(repo: Path) -> None:
    """Fail before any LLM call when the pull request could never be published (no usable git remote).

    Raises:
        InputError: the message says how to add a remote (or to pass --no-pr).
    """
    from tasks.pull_requests.git_ops import find_remote, open_repo

    try:
        find_remote(open_repo(repo))
    except InputError as exc:
        raise InputError(f"{exc} (or pass --no-pr to skip the pull request)") from exc


def only_retryable(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Prefect `retry_condition_fn`: retry a retryable outside fault that no lower layer retries already."""
    exc = state.data if isinstance(state.data, BaseException) else state.result(raise_on_failure=False)
    if isinstance(exc, ProviderError | GitHubError):
        return False
    return isinstance(exc, ExternalError) and exc.retryable


@task(
    name="index-repository",
    retries=2,
    retry_delay_seconds=[1, 4],
    retry_condition_fn=only_retryable,
    cache_policy=NO_CACHE,
    persist_result=False,
)
def index_repo_task(repo: Path, store_dir: Path | None = None) -> dict[str, Any]:
    """Bring the repository's index up to date (incremental: only changed files are read)."""
    from dataclasses import asdict

    from tasks.indexing import index_repository

    return asdict(index_repository(repo, full=False, store_dir=store_dir))


@task(
    name="gather-context",
    retries=2,
    retry_delay_seconds=[1, 4],
    retry_condition_fn=only_retryable,
    cache_policy=NO_CACHE,
    persist_result=False,
)
def gather_context_task(
    repo: Path, request: str, read_root: Path, settings: Settings | None = None, store_dir: Path | None = None
) -> CodeContext:
    """Search hits (hybrid when an embedding model is configured) and the repository map for the request."""
    return gather_context(repo, request, read_root=read_root, store_dir=store_dir, settings=settings)


@task(name="ask-model", cache_policy=NO_CACHE, persist_result=False)
def ask_model_task(
    messages: Sequence[Message], settings: Settings, model: str, fallbacks: Sequence[str] | None = None
) -> Generation:
    """One LLM call through the ProviderManager (no task retries: the manager owns them).

    On a deployed run the call holds a slot of the provider's Prefect global concurrency limit (created by
    `vibe setup`), so every worker together stays under it; ad-hoc runs have no such limits to hold.
    """
    limiter = None
    context = FlowRunContext.get()
    if context is not None and context.flow_run is not None and context.flow_run.deployment_id is not None:
        from tasks.llm_limits import prefect_llm_limiter

        limiter = prefect_llm_limiter
    return run_coro_as_sync(ask_model(messages, settings=settings, model=model, fallbacks=fallbacks, limiter=limiter))


@dataclass(frozen=True)
class AppliedReply:
    """What applying one reply did: the files written with their new text, or the problems for the model.

    Attributes:
        written: the paths written (relative, POSIX), in the reply's order; empty when `problems` is not.
        problems: one message per edit that could not be applied (nothing was written then).
        contents: path -> the complete new text of each written file: the pipeline's own record of the edits,
            from which the patch and the pull request are built.
    """

    written: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    contents: Mapping[str, str] = field(default_factory=dict)


@task(name="apply-edits", cache_policy=NO_CACHE, persist_result=False)
def apply_reply_task(root: Path, reply: str, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> AppliedReply:
    """Parse a reply and apply its edits under `root`, all or nothing.

    Returns:
        The files written and their content, or the problems for the model (then nothing was written).

    Raises:
        UnsafeEditError: an edit is refused (nothing was written).
    """
    parsed = parse_reply(reply)
    problems = [str(p) for p in parsed.problems]
    if not parsed.edits and not problems:
        problems.append("the reply contains no edit: put each file path on its own line, then a fenced block")
    if problems:
        return AppliedReply(problems=tuple(problems))
    plan = apply_edits(root, parsed.edits, max_file_bytes=max_file_bytes)
    if not plan.ok:
        return AppliedReply(problems=tuple(str(p) for p in plan.problems))
    return AppliedReply(
        written=tuple(w.path for w in plan.writes), contents={w.path: w.content for w in plan.writes}
    )


def require_sandbox(settings: Settings) -> None:
    """Fail before any work when the tests the model writes could not run isolated here.

    Raises:
        SandboxUnavailableError: bubblewrap does not work and `VIBE_SANDBOX=unsafe` is not set; the message says
            how to install it.
    """
    import os

    from tasks.testing.sandbox import SandboxUnavailableError, bwrap_available, unavailable_message

    if settings.sandbox == "unsafe":
        return
    why_not = bwrap_available(os.environ.get("PATH"))
    if why_not is not None:
        raise SandboxUnavailableError(unavailable_message(why_not))


@task(
    name="run-tests",
    retries=1,
    retry_delay_seconds=2,
    retry_condition_fn=only_retryable,
    cache_policy=NO_CACHE,
    persist_result=False,
)
def run_tests_task(workspace: Path, settings: Settings, command: str | None = None) -> dict[str, Any]:
    """Run the workspace's test suite in the sandbox; the report as JSON plus its digest and markdown."""
    from tasks.testing import run_test_suite, runner_options

    # The model wrote this code: it runs only in the sandbox (a refusal without bubblewrap, unless VIBE_SANDBOX=unsafe).
    report = run_test_suite(workspace, command=command, trusted_code=False, **runner_options(settings))
    if TaskRunContext.get() is not None:
        from prefect.artifacts import create_table_artifact

        create_table_artifact(report.table_rows(), description=f"tests: {report.counts_line()}")
    return {
        "ok": report.ok,
        "report": report.to_json_dict(),
        # The digest goes into the prompt: made stable across runs so caches and cassettes match.
        "digest": normalise_output(report.failure_digest(6000), workspace=workspace),
        "markdown": report.to_markdown(),
    }


@task(name="publish-pull-request", cache_policy=NO_CACHE, persist_result=False)
def publish_pr_task(
    repo: Path,
    changes: ChangeSet,
    *,
    title: str,
    body_args: dict[str, Any],
    key: str,
    base: str | None,
    tests_passed: bool,
    github_repo: str | None,
    settings: Settings,
) -> dict[str, Any]:
    """Commit the validated edits (`changes`, never a working tree), push the key's branch, open or update its PR.

    No task retries: the GitHub adapter retries its own calls. The PR is a draft when the tests fail and
    `settings.pr_draft_on_failure` is set (the policy lives in `publish_pull_request`).

    Returns:
        `{"branch", "number", "url", "created", "local", "description_path", "base"}`.
    """
    from tasks.pull_requests import publish_pull_request, render_pr_body

    result = publish_pull_request(
        repo,
        title=title,
        body=render_pr_body(**body_args),
        key=key,
        base=base,
        github_repo=github_repo,
        changes=changes,
        settings=settings,
        tests_passed=tests_passed,
    )
    return {
        **result.to_json_dict(),
        "local": result.local,
        "description_path": str(result.description_path) if result.description_path else None,
        "base": result.base,
        "nothing_to_commit": result.nothing_to_commit,
    }
