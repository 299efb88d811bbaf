"""Thin Prefect task wrappers over the indexing functions.

One retry layer: an index run is retried only when another run held the repository's store past the wait
(`LockTimeoutError`, retryable); bad input and broken stores are not retried. No caching: an index run's
result depends on the working tree, not on its arguments.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun

from tasks.indexing.index import index_repository
from tasks.indexing.models import IndexStats
from vibe.errors import ExternalError

# At most one progress update per this many seconds: each one is an API call.
_PROGRESS_EVERY_S = 0.5


def _retryable(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    exc = state.data if isinstance(state.data, BaseException) else state.result(raise_on_failure=False)
    return isinstance(exc, ExternalError) and exc.retryable


class _ArtifactProgress:
    """A progress callback that advances a Prefect progress artifact (files done out of total)."""

    def __init__(self, artifact_id: UUID) -> None:
        self.artifact_id = artifact_id
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        from prefect.artifacts import update_progress_artifact

        now = time.monotonic()
        if done not in (0, total) and now - self.last < _PROGRESS_EVERY_S:
            return
        self.last = now
        percent = 100.0 if total == 0 else 100.0 * done / total
        update_progress_artifact(self.artifact_id, progress=percent, description=f"{done}/{total} files analysed")


@task(
    name="index-repository",
    retries=1,
    retry_delay_seconds=5,
    retry_condition_fn=_retryable,
    cache_policy=NO_CACHE,
    persist_result=False,
)
def index_repository_task(
    repo: Path, full: bool = False, store_dir: Path | None = None, progress_artifact: UUID | None = None
) -> IndexStats:
    """Index the repository, advancing `progress_artifact` (if given) as files are analysed."""
    progress = _ArtifactProgress(progress_artifact) if progress_artifact is not None else None
    return index_repository(repo, full=full, store_dir=store_dir, progress=progress)


__all__ = ["index_repository_task"]
