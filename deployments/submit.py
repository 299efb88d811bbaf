"""Queue a run of one of the project's deployments on the queue of its priority.

```python
from deployments.submit import submit_run
run_id = submit_run(settings, "index", {"repo_path": "/src/app"}, priority="high", key="index-app-1")
```

The same `key` always returns the same run (Prefect's idempotency key on `create_flow_run_from_deployment`),
so a client that retries a submission after a timeout does not queue the work twice.
"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

from deployments import catalog
from deployments._client import prefect_api
from vibe.errors import ConfigError, InputError
from vibe.settings import Settings


def deployment_name(kind: str) -> str:
    """The deployment (in `prefect.yaml`) that runs `kind` (`index`, `test`, `pr`, `run`, ...)."""
    try:
        return catalog.DEPLOYMENTS[kind]
    except KeyError:
        known = ", ".join(sorted(catalog.DEPLOYMENTS))
        raise InputError(f"unknown kind of run {kind!r}; choose one of: {known}") from None


async def asubmit_run(
    settings: Settings,
    kind: str,
    parameters: dict[str, Any],
    *,
    priority: str | None = None,
    key: str | None = None,
) -> UUID:
    """Create a flow run of the deployment for `kind` on the `priority` queue and return its id.

    Args:
        settings: where the Prefect API and the work pool are.
        kind: `index`, `generate`, `test`, `pr`, `run` (the feature pipeline), `cleanup` or `reindex`.
        parameters: the flow's parameters; the deployment validates them against the flow's signature.
        priority: `critical`, `high`, `medium` or `low`: the queue the run waits in; None keeps the
            deployment's own queue (`prefect.yaml`).
        key: idempotency key; a second submission with the same key returns the first run's id.

    Raises:
        InputError: unknown kind or priority, or parameters the flow rejects.
        ConfigError: no Prefect API, or the deployment is not deployed (`prefect deploy --all`).
        OrchestrationError: the Prefect API failed.
    """
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        WorkPoolFilter,
        WorkPoolFilterName,
    )

    name = deployment_name(kind)
    if priority is not None and priority not in catalog.QUEUES:
        raise InputError(f"unknown priority {priority!r}; choose one of: {', '.join(catalog.QUEUES)}")
    async with prefect_api(settings) as client:
        found = await client.read_deployments(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[name])),
            work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[settings.work_pool])),
            limit=2,
        )
        if not found:
            raise ConfigError(
                f"deployment {name!r} is not on work pool {settings.work_pool!r}: run `vibe setup` and "
                "`prefect deploy --all` in the project folder"
            )
        run = await client.create_flow_run_from_deployment(
            found[0].id,
            parameters=parameters,
            idempotency_key=key,
            work_queue_name=priority,
        )
    return run.id


def submit_run(
    settings: Settings,
    kind: str,
    parameters: dict[str, Any],
    *,
    priority: str | None = None,
    key: str | None = None,
) -> UUID:
    """Synchronous `asubmit_run` (same arguments, same errors)."""
    return asyncio.run(asubmit_run(settings, kind, parameters, priority=priority, key=key))
