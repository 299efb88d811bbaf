"""Scheduled re-indexing: `index_codebase` as a subflow for each configured repository.

Deployed as `reindex_repositories/reindex` on the `low` queue with the cron in the Prefect variable
`vibe_reindex_cron` (default every 6 hours). The repositories come from the `repos` parameter, else the
Prefect variable `vibe_reindex_repos` (written by `vibe setup` from `VIBE_REINDEX_REPOS`, read at run time so a
change needs no re-deploy), else `VIBE_REINDEX_REPOS` in the worker's environment.
"""

from __future__ import annotations

from typing import Annotated

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.variables import Variable
from pydantic import BaseModel, ConfigDict, Field

from deployments.catalog import VAR_REINDEX_REPOS
from flows.index_codebase import index_codebase
from tasks.indexing.models import IndexStats
from vibe.errors import InputError
from vibe.settings import Settings, current_settings


class ReindexReport(BaseModel):
    """What a re-index run did, per repository (frozen; round-trips through JSON).

    Attributes:
        indexed: the figures of each repository that was indexed.
        failed: why each other repository could not be indexed.
    """

    model_config = ConfigDict(frozen=True)

    indexed: dict[str, IndexStats] = Field(default_factory=dict)
    failed: dict[str, str] = Field(default_factory=dict)


def _markdown(report: ReindexReport) -> str:
    lines = ["| repository | files | changed | result |", "| --- | ---: | ---: | --- |"]
    lines += [f"| `{repo}` | {stats.files} | {stats.changed} | indexed |" for repo, stats in report.indexed.items()]
    lines += [f"| `{repo}` | - | - | {error} |" for repo, error in report.failed.items()]
    return "\n".join(lines)


def _configured(settings: Settings) -> list[str]:
    value = Variable.get(VAR_REINDEX_REPOS, default=None)
    if isinstance(value, list) and value:
        return [str(item) for item in value]
    return list(settings.reindex_repos)


@flow(name="reindex_repositories", description="Re-index the configured repositories (index_codebase per repo).")
def reindex_repositories(
    repos: Annotated[
        list[str] | None,
        Field(description="Repository paths on the worker's machine; empty = the configured list."),
    ] = None,
    full: Annotated[bool, Field(description="Rebuild each index from nothing instead of updating it.")] = False,
) -> ReindexReport:
    """Run `index_codebase` for each repository, one after the other; one failure does not stop the rest.

    Args:
        repos: the repositories; None or empty uses `vibe_reindex_repos` / `VIBE_REINDEX_REPOS`.
        full: rebuild every index from nothing.

    Returns:
        The index figures of each repository (`indexed`); `failed` is empty (a failure raises, see below).

    Raises:
        InputError: at least one repository could not be indexed (the others were); the run ends Failed.
    """
    settings = current_settings()
    targets = list(repos or []) or _configured(settings)
    logger = get_run_logger()
    if not targets:
        logger.info("no repositories configured (VIBE_REINDEX_REPOS / variable vibe_reindex_repos): nothing to do")
        return ReindexReport()
    indexed: dict[str, IndexStats] = {}
    failed: dict[str, str] = {}
    for repo in targets:
        state = index_codebase(repo, full=full, return_state=True)
        if state.is_completed():
            indexed[repo] = state.result()
        else:
            failed[repo] = state.message or state.name or "failed"
    report = ReindexReport(indexed=indexed, failed=failed)
    total = len(indexed) + len(failed)
    description = f"{len(indexed)} of {total} repositories re-indexed"
    create_markdown_artifact(key="reindex-report", markdown=_markdown(report), description=description)
    if failed:
        raise InputError(f"could not re-index {len(failed)} of {total} repositories: {', '.join(failed)}")
    return report
