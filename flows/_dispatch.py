"""The one way a caller runs a flow: tracked (a Prefect flow run) or direct (the flow's body as a plain call).

The CLI's step commands (`vibe run`, `vibe test`, `vibe index`, `vibe pr`) and Python callers use `run_flow`,
so each command has a single path. Direct mode calls `flow.fn`: the steps run as plain functions through
`tasks.step.call_step` and the flows publish artifacts only inside a flow run, so no Prefect API is needed and
no temporary server is started.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from prefect import Flow

from vibe.settings import Settings, current_settings, use_settings

__all__ = ["run_flow"]

P = ParamSpec("P")
R = TypeVar("R")


def run_flow(flow: Flow[P, R], *, settings: Settings | None = None, tracked: bool | None = None) -> Callable[P, R]:
    """`flow` as a function with its own parameters that runs it tracked or direct, under `settings`.

    `run_flow(index_codebase, settings=settings)(repo, full=True)`: the returned function takes exactly the
    flow's parameters (so they are type-checked), and returns what the flow returns.

    Args:
        flow: the flow to run.
        settings: what `current_settings()` returns inside the run (default: the caller's current settings).
        tracked: run as a Prefect flow run (True) or as a plain call (False); None: tracked exactly when a
            Prefect API is configured (`PREFECT_API_URL`), so a quick local action never waits for Prefect's
            temporary server.
    """

    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        active = settings if settings is not None else current_settings()
        as_flow_run = bool(active.prefect_api_url) if tracked is None else tracked
        with use_settings(active):
            return flow(*args, **kwargs) if as_flow_run else flow.fn(*args, **kwargs)

    return call
