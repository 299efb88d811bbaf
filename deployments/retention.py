"""Retention: delete old flow runs with their logs and artifacts (the seed's 24 h completed / 48 h failed).

Prefect OSS keeps every run forever unless told otherwise, and its database vacuum service knows a single
retention period. `purge_runs` applies two: COMPLETED runs that ended before one cutoff, FAILED and CRASHED
runs that ended before another. For each run it deletes the run's artifacts, then the run; the server
deletes the run's task runs and states with it and its logs in a background job.

`cleanup_runs` (flows/cleanup_runs.py) is the scheduled flow around it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from deployments._client import prefect_api
from vibe.settings import Settings

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.objects import FlowRun

_PAGE = 200
_COMPLETED = ("COMPLETED",)
_FAILED = ("FAILED", "CRASHED")


class ExpiredRun(BaseModel):
    """One run that retention removed (or, in a dry run, would remove)."""

    id: UUID
    name: str
    state: str
    ended: datetime | None
    artifacts: int
    logs: int


class CleanupReport(BaseModel):
    """What a cleanup found and removed."""

    dry_run: bool
    completed_before: datetime = Field(description="COMPLETED runs that ended before this were expired")
    failed_before: datetime = Field(description="FAILED and CRASHED runs that ended before this were expired")
    runs: list[ExpiredRun] = Field(default_factory=list)
    deleted_runs: int = 0
    deleted_artifacts: int = 0
    deleted_logs: int = 0
    truncated: bool = Field(False, description="more runs had expired than `limit`; the next run takes them")

    def summary(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        runs = len(self.runs) if self.dry_run else self.deleted_runs
        artifacts = sum(r.artifacts for r in self.runs) if self.dry_run else self.deleted_artifacts
        logs = sum(r.logs for r in self.runs) if self.dry_run else self.deleted_logs
        more = " (more remain)" if self.truncated else ""
        return f"{verb} {runs} runs, {artifacts} artifacts, {logs} log lines{more}"


async def _expired(
    client: PrefectClient,
    state_types: tuple[str, ...],
    before: datetime,
    limit: int,
    exclude: set[UUID],
    tag: str | None,
) -> list[FlowRun]:
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterEndTime,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    flow_filter = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType(t) for t in state_types])),
        end_time=FlowRunFilterEndTime(before_=before),
        tags=FlowRunFilterTags(all_=[tag]) if tag else None,
    )
    found: list[FlowRun] = []
    offset = 0
    while len(found) < limit:
        page = await client.read_flow_runs(
            flow_run_filter=flow_filter,
            sort=FlowRunSort.END_TIME_DESC,
            limit=min(_PAGE, limit - len(found)),
            offset=offset,
        )
        found.extend(run for run in page if run.id not in exclude)
        if len(page) < _PAGE:
            break
        offset += len(page)
    return found[:limit]


async def _artifact_ids(client: PrefectClient, run_id: UUID) -> list[UUID]:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    ids: list[UUID] = []
    while True:
        page = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])),
            limit=_PAGE,
            offset=len(ids),
        )
        ids.extend(artifact.id for artifact in page)
        if len(page) < _PAGE:
            return ids


async def _log_count(client: PrefectClient, run_id: UUID) -> int:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    count = 0
    while True:
        page = await client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])), limit=_PAGE, offset=count
        )
        count += len(page)
        if len(page) < _PAGE:
            return count


async def purge_runs(
    settings: Settings,
    *,
    completed_older_than_h: float | None = None,
    failed_older_than_h: float | None = None,
    dry_run: bool = False,
    limit: int = 1000,
    now: datetime | None = None,
    exclude: set[UUID] | None = None,
    tag: str | None = None,
) -> CleanupReport:
    """Delete (or list, with `dry_run`) the runs past retention, with their artifacts and logs.

    Args:
        settings: where the Prefect API is and the default retention periods.
        completed_older_than_h: hours after which a COMPLETED run is deleted (default
            `settings.retention_completed_h`, 24).
        failed_older_than_h: the same for FAILED and CRASHED runs (default `settings.retention_failed_h`, 48).
        dry_run: only report what would be deleted.
        limit: at most this many runs of each kind per call; `truncated` says when more were due.
        now: the reference time (tests); default the current time.
        exclude: run ids never to touch (the cleanup's own run).
        tag: only runs carrying this tag (e.g. `vibe` on a Prefect server shared with other projects);
            None considers every run on the server.

    Raises:
        OrchestrationError: the Prefect API failed.
    """
    from prefect.exceptions import ObjectNotFound

    now = now or datetime.now(UTC)
    completed_before = now - timedelta(hours=completed_older_than_h or settings.retention_completed_h)
    failed_before = now - timedelta(hours=failed_older_than_h or settings.retention_failed_h)
    report = CleanupReport(dry_run=dry_run, completed_before=completed_before, failed_before=failed_before)
    skip = exclude or set()
    async with prefect_api(settings) as client:
        runs = await _expired(client, _COMPLETED, completed_before, limit, skip, tag)
        failed = await _expired(client, _FAILED, failed_before, limit, skip, tag)
        report.truncated = len(runs) >= limit or len(failed) >= limit
        for run in [*runs, *failed]:
            artifacts = await _artifact_ids(client, run.id)
            logs = await _log_count(client, run.id)
            report.runs.append(
                ExpiredRun(
                    id=run.id,
                    name=run.name,
                    state=run.state.name if run.state else "?",
                    ended=run.end_time,
                    artifacts=len(artifacts),
                    logs=logs,
                )
            )
            if dry_run:
                continue
            for artifact_id in artifacts:
                try:
                    await client.delete_artifact(artifact_id)
                    report.deleted_artifacts += 1
                except ObjectNotFound:  # another cleanup got there first
                    pass
            try:
                await client.delete_flow_run(run.id)
            except ObjectNotFound:
                continue
            report.deleted_runs += 1
            report.deleted_logs += logs
    return report


@task(name="purge_expired_runs", cache_policy=NO_CACHE)
async def purge_expired_runs(
    settings: Settings,
    *,
    completed_older_than_h: float | None = None,
    failed_older_than_h: float | None = None,
    dry_run: bool = False,
    limit: int = 1000,
    exclude: set[UUID] | None = None,
    tag: str | None = None,
) -> CleanupReport:
    """`purge_runs` as a Prefect task (no cache: its input holds secrets and its effect must happen)."""
    return await purge_runs(
        settings,
        completed_older_than_h=completed_older_than_h,
        failed_older_than_h=failed_older_than_h,
        dry_run=dry_run,
        limit=limit,
        exclude=exclude,
        tag=tag,
    )
