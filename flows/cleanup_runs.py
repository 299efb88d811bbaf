"""Retention flow: delete old runs with their logs and artifacts, report what went.

Deployed as `cleanup_runs/cleanup` on the `low` queue, hourly (prefect.yaml). The work is
`deployments.retention.purge_runs`; this flow picks the defaults, runs it and publishes the report as a
markdown artifact.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact
from prefect.runtime import flow_run
from pydantic import Field

from deployments.retention import CleanupReport, purge_expired_runs
from vibe.settings import current_settings


def _markdown(report: CleanupReport) -> str:
    lines = [
        f"**{report.summary()}**",
        "",
        f"- completed runs that ended before {report.completed_before:%Y-%m-%d %H:%M} UTC",
        f"- failed/crashed runs that ended before {report.failed_before:%Y-%m-%d %H:%M} UTC",
        "",
    ]
    if report.runs:
        lines += ["| run | state | ended | artifacts | log lines |", "| --- | --- | --- | --- | --- |"]
        lines += [
            f"| {run.name} (`{run.id}`) | {run.state} | {run.ended:%Y-%m-%d %H:%M} | {run.artifacts} | {run.logs} |"
            if run.ended
            else f"| {run.name} (`{run.id}`) | {run.state} | - | {run.artifacts} | {run.logs} |"
            for run in report.runs[:200]
        ]
    return "\n".join(lines)


@flow(name="cleanup_runs", description="Delete completed runs older than 24 h and failed/crashed runs older than 48 h.")
async def cleanup_runs(
    completed_older_than_h: Annotated[
        float | None,
        Field(gt=0, description="Delete COMPLETED runs that ended more than this many hours ago (default 24)."),
    ] = None,
    failed_older_than_h: Annotated[
        float | None,
        Field(gt=0, description="Delete FAILED/CRASHED runs that ended more than this many hours ago (default 48)."),
    ] = None,
    dry_run: Annotated[bool, Field(description="Only report what would be deleted; delete nothing.")] = False,
    limit: Annotated[
        int, Field(ge=1, le=100_000, description="At most this many runs of each kind per cleanup; the rest next time.")
    ] = 1000,
    tag: Annotated[
        str | None,
        Field(description="Only runs carrying this tag (e.g. 'vibe' on a shared server); empty = every run."),
    ] = None,
) -> CleanupReport:
    """Delete runs past retention (with their logs and artifacts) and report what was removed.

    Args:
        completed_older_than_h: retention of COMPLETED runs in hours; None uses `VIBE_RETENTION_COMPLETED_H`.
        failed_older_than_h: retention of FAILED/CRASHED runs in hours; None uses `VIBE_RETENTION_FAILED_H`.
        dry_run: list what would be deleted without deleting it.
        limit: the most runs of each kind one cleanup removes.
        tag: only runs with this tag; None (or empty) considers every run on the server.

    Returns:
        The report: every run removed (or due, in a dry run) with its counts of artifacts and log lines.
    """
    settings = current_settings()
    own = {UUID(flow_run.id)} if flow_run.id else set()
    report = await purge_expired_runs(
        settings,
        completed_older_than_h=completed_older_than_h,
        failed_older_than_h=failed_older_than_h,
        dry_run=dry_run,
        limit=limit,
        exclude=own,
        tag=tag or None,
    )
    get_run_logger().info("retention: %s", report.summary())
    await acreate_markdown_artifact(
        key="cleanup-report", markdown=_markdown(report), description=report.summary()
    )
    return report
