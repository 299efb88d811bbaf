"""The indexing steps as thin Prefect tasks over `index_repository` (the project's only `index-repository`)
and `localize` (`localize-request`).

Declared with `tasks.step.step`: an index run is retried only for a retryable fault, in practice another run
holding the repository's store past the wait (`LockTimeoutError`); bad input and broken stores are not
retried. No caching: an index run's result depends on the working tree, not on its arguments. The
localization step gets no task retries (the provider stack retries, fails over and caches the LLM call).
"""

from __future__ import annotations

import time
from pathlib import Path
from uuid import UUID

from prefect.utilities.asyncutils import run_coro_as_sync

from providers.manager import ProviderManager
from tasks.indexing.index import index_repository
from tasks.indexing.localize import Localization, localize
from tasks.indexing.models import IndexStats
from tasks.step import step

# At most one progress update per this many seconds: each one is an API call.
_PROGRESS_EVERY_S = 0.5


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


@step("index-repository", retries=1, retry_delay_seconds=5)
def index_repository_task(
    repo: Path, full: bool = False, store_dir: Path | None = None, progress_artifact: UUID | None = None
) -> IndexStats:
    """Index the repository, advancing `progress_artifact` (if given) as files are analysed."""
    progress = _ArtifactProgress(progress_artifact) if progress_artifact is not None else None
    return index_repository(repo, full=full, store_dir=store_dir, progress=progress)


@step("localize-request")
def localize_request_task(
    repo: Path,
    request: str,
    *,
    manager: ProviderManager,
    model: str = "cheap",
    max_files: int = 5,
    store_dir: Path | None = None,
) -> Localization:
    """The files (and symbols) a cheap model names for the request, or the ranking's (see `localize`)."""
    return run_coro_as_sync(
        localize(repo, request, completer=manager, model=model, max_files=max_files, store_dir=store_dir)
    )


__all__ = ["index_repository_task", "localize_request_task"]
