"""The `index_codebase` flow: bring a repository's code index up to date.

Orchestration only: the work is `tasks.indexing.index_repository` (incremental by git blob ids; `full` rebuilds
from nothing). While it runs, a progress artifact shows files analysed out of files to analyse; at the end a
markdown artifact summarises what the run did (both only inside a flow run: called through `.fn` it is the plain
index run). It runs from `vibe index` (through `flows._dispatch.run_flow`: tracked when a Prefect API is
configured, direct otherwise), as a subflow of the scheduled `reindex_repositories`, and from its deployment.
`feature_pipeline` and `generate_code` call the same `index_repository_task` as a step.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast
from uuid import UUID

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_progress_artifact
from prefect.context import FlowRunContext

from tasks.indexing.models import IndexStats
from tasks.indexing.prefect_tasks import index_repository_task
from tasks.step import artifact_key, call_step

# Problems listed in the summary; the rest are counted.
_MAX_PROBLEMS = 20


def _artifact_key(repo_path: str, kind: str) -> str:
    name = Path(repo_path).resolve().name or "repository"
    return artifact_key("index", kind, name)


def summary_markdown(repo_path: str, stats: IndexStats) -> str:
    """The summary artifact's text: figures, skipped files by reason, and the problems found."""
    lines = [
        f"# Index of `{repo_path}`",
        "",
        "| files | changed | symbols | chunks | skipped | seconds |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {stats.files} | {stats.changed} | {stats.symbols} | {stats.chunks} | {stats.skipped} "
        f"| {stats.elapsed_s:.2f} |",
    ]
    if stats.skipped_by_reason:
        reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(stats.skipped_by_reason.items()))
        lines += ["", f"Skipped files by reason: {reasons}."]
    if stats.problems:
        lines += ["", f"## Problems ({len(stats.problems)})", ""]
        lines += [f"- {problem}" for problem in stats.problems[:_MAX_PROBLEMS]]
        if len(stats.problems) > _MAX_PROBLEMS:
            lines.append(f"- ... and {len(stats.problems) - _MAX_PROBLEMS} more")
    lines += ["", f"Store: `{stats.store}`"]
    return "\n".join(lines)


@flow(name="index_codebase")
def index_codebase(repo_path: str, full: bool = False) -> IndexStats:
    """Index the git repository at `repo_path` for search and repo maps.

    Args:
        repo_path: any directory inside the repository's working tree.
        full: rebuild the index from nothing instead of updating what changed.

    Returns:
        The run's figures; `as_dict()` is what `vibe index --json` prints (`files`, `changed`, `symbols`,
        `chunks`, `skipped`, `elapsed_s`).
    """
    if FlowRunContext.get() is None:  # called through `.fn`: the plain index run, no artifacts
        return call_step(index_repository_task, Path(repo_path), full=full)
    # Called from a sync flow, Prefect's dispatching function returns the id itself, not a coroutine.
    progress_id = cast(
        UUID,
        create_progress_artifact(
            progress=0.0, key=_artifact_key(repo_path, "progress"), description="scanning the working tree"
        ),
    )
    stats: IndexStats = index_repository_task(Path(repo_path), full=full, progress_artifact=progress_id)
    create_markdown_artifact(
        key=_artifact_key(repo_path, "summary"),
        markdown=summary_markdown(repo_path, stats),
        description=f"{stats.files} files indexed, {stats.changed} changed",
    )
    return stats
