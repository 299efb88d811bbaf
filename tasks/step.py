"""The one way a plain function of `tasks/` becomes a Prefect task, and the one retry policy.

Every `prefect_tasks.py` module of a `tasks/` package declares its wrappers with `step(name, retries=...)`:
no cache (a step's result depends on files and services, not on its arguments), no result persistence (the
pipeline keeps its own journal), and retries only for faults `retry_only_retryable` admits. A flow calls a
step with `call_step`, which is a tracked task run inside a flow run and a plain call outside one.

Retries: only faults an outside system calls retryable are retried, and never where another layer already
retries them: LLM calls (the provider stack retries and fails over) and GitHub calls (the GitHub adapter
retries) get no task retries at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.context import FlowRunContext

from vibe.errors import ExternalError, GitHubError, ProviderError

__all__ = ["call_step", "retry_only_retryable", "step"]

P = ParamSpec("P")
R = TypeVar("R")


def retry_only_retryable(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Prefect `retry_condition_fn`: retry a retryable outside fault that no lower layer retries already."""
    exc = state.data if isinstance(state.data, BaseException) else state.result(raise_on_failure=False)
    if isinstance(exc, ProviderError | GitHubError):
        return False
    return isinstance(exc, ExternalError) and exc.retryable


def step(
    name: str, *, retries: int = 0, retry_delay_seconds: float | Sequence[float] = 0
) -> Callable[[Callable[P, R]], Task[P, R]]:
    """A decorator making `fn` the Prefect task `name` under the project's policy.

    Args:
        name: the task's name (kebab-case, unique across the project).
        retries: how many times a retryable fault is retried (see `retry_only_retryable`); 0 where a lower
            layer retries already or where a failure is an outcome.
        retry_delay_seconds: the wait before each retry (one value, or one per retry).
    """
    delays: float | list[float] = (
        retry_delay_seconds if isinstance(retry_delay_seconds, int | float) else list(retry_delay_seconds)
    )

    def wrap(fn: Callable[P, R]) -> Task[P, R]:
        return task(
            name=name,
            retries=retries,
            retry_delay_seconds=delays,
            retry_condition_fn=retry_only_retryable if retries else None,
            cache_policy=NO_CACHE,
            persist_result=False,
        )(fn)

    return wrap


def call_step(step: Task[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Call a step: a tracked task run inside a flow run, a plain function call outside one.

    Outside a flow run (a flow called through `.fn`, as the CLI does without a Prefect API) calling a task
    would make Prefect start a temporary server just to record it; the plain call does the same work.
    """
    if FlowRunContext.get() is not None:
        return step(*args, **kwargs)
    return step.fn(*args, **kwargs)


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key from `parts` (`artifact_key("index", "summary", "My Repo")` -> `index-summary-my-repo`).

    Prefect allows lowercase letters, digits and dashes only, at most 100 characters; every other run of
    characters becomes one dash.
    """
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")[:100]
