"""How a pipeline run reports as it goes: log lines, one progress artifact, the summary artifact, the run's id.

Inside a Prefect flow run these go to the run's logger and artifacts; outside one (a flow called through `.fn`)
they are log lines only, so a direct run never needs a Prefect API.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect.context import FlowRunContext

from tasks.step import artifact_key

__all__ = ["Progress", "flow_run_id", "record_markdown", "record_table", "say"]

_log = logging.getLogger("vibe.pipeline")


def _artifact_key(kind: str, key: str) -> str:
    return artifact_key("pipeline", kind, key)


def _in_flow() -> bool:
    return FlowRunContext.get() is not None


def say(message: str) -> None:
    """One line for the run's log (Prefect's run logger inside a flow run)."""
    if _in_flow():
        from prefect.logging import get_run_logger

        get_run_logger().info(message)
    else:
        _log.info(message)


class Progress:
    """One Prefect progress artifact per run, advanced through the stages (log lines outside a flow run)."""

    def __init__(self, key: str, *, first_stage: str) -> None:
        self._id: Any = None
        if _in_flow():
            from prefect.artifacts import create_progress_artifact

            self._id = create_progress_artifact(
                0.0, key=_artifact_key("progress", key), description="feature_pipeline progress"
            )
        self.advance(0, first_stage)

    def advance(self, percent: float, stage: str) -> None:
        say(f"[{percent:3.0f}%] {stage}")
        if self._id is not None:
            from prefect.artifacts import update_progress_artifact

            update_progress_artifact(self._id, min(max(percent, 0.0), 100.0), description=stage)


def record_markdown(key: str, markdown: str) -> None:
    """The run's summary as a markdown artifact (nothing outside a flow run)."""
    if _in_flow():
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(markdown, key=_artifact_key("summary", key), description="feature_pipeline outcome")


def record_table(rows: list[dict[str, Any]], description: str) -> None:
    """A table artifact of the run (nothing outside a flow run)."""
    if _in_flow():
        from prefect.artifacts import create_table_artifact

        create_table_artifact(rows, description=description)


def flow_run_id() -> str | None:
    """The id of the flow run this runs in, or None outside one."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None
    return str(context.flow_run.id)
