"""The state and progress of a run, as `vibe status` and the Python API report them.

Progress is the run's Prefect progress artifact (0-100), which the flows advance at each stage; a run that
completed without one reports 100.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from deployments._client import prefect_api
from vibe.errors import InputError
from vibe.settings import Settings


class ArtifactRef(BaseModel):
    """An artifact the run published (tables of test results, PR links, reports)."""

    key: str | None
    type: str | None
    description: str | None


class RunStatus(BaseModel):
    """Where a run is."""

    run_id: UUID
    name: str
    state: str = Field(description="the state type: SCHEDULED, PENDING, RUNNING, COMPLETED, FAILED, CRASHED, ...")
    state_name: str = Field(description="the state's name, e.g. AwaitingConcurrencySlot, Late, Retrying")
    message: str | None = None
    progress: float | None = Field(None, description="0-100 from the run's progress artifact; None when unknown")
    final: bool = Field(description="the run is over (completed, failed, crashed or cancelled)")
    deployment: str | None = None
    queue: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    created: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    artifacts: list[ArtifactRef] = Field(default_factory=list)


def parse_run_id(value: str) -> UUID:
    """A run id from user input; a clear error when it is not one."""
    try:
        return UUID(value.strip())
    except ValueError:
        raise InputError(f"{value!r} is not a run id (a UUID such as the one `vibe submit` printed)") from None


async def arun_status(settings: Settings, run_id: UUID | str) -> RunStatus:
    """The state, progress and artifacts of flow run `run_id`.

    Raises:
        InputError: not a run id, or no such run on the server.
        ConfigError: no Prefect API is configured.
        OrchestrationError: the Prefect API failed.
    """
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.client.schemas.sorting import ArtifactSort
    from prefect.exceptions import ObjectNotFound

    rid = run_id if isinstance(run_id, UUID) else parse_run_id(run_id)
    async with prefect_api(settings) as client:
        try:
            run = await client.read_flow_run(rid)
        except ObjectNotFound:
            raise InputError(f"no flow run {rid} on this Prefect server") from None
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[rid])),
            sort=ArtifactSort.UPDATED_DESC,
            limit=100,
        )
        deployment = None
        if run.deployment_id:
            try:
                deployment = (await client.read_deployment(run.deployment_id)).name
            except ObjectNotFound:  # deleted since
                deployment = None
    state = run.state
    progress: float | None = None
    for artifact in artifacts:
        if artifact.type == "progress" and isinstance(artifact.data, int | float):
            progress = float(artifact.data)
            break
    if progress is None and state is not None and state.is_completed():
        progress = 100.0
    return RunStatus(
        run_id=run.id,
        name=run.name,
        state=state.type.value if state else "UNKNOWN",
        state_name=(state.name or state.type.value.title()) if state else "Unknown",
        message=state.message if state else None,
        progress=progress,
        final=bool(state and state.is_final()),
        deployment=deployment,
        queue=run.work_queue_name,
        parameters=dict(run.parameters),
        created=run.created,
        start_time=run.start_time,
        end_time=run.end_time,
        artifacts=[
            ArtifactRef(key=a.key, type=a.type, description=a.description) for a in artifacts if a.type != "progress"
        ],
    )


def run_status(settings: Settings, run_id: UUID | str) -> RunStatus:
    """Synchronous `arun_status`."""
    return asyncio.run(arun_status(settings, run_id))
