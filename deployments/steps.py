"""Pull steps of the deployments in `prefect.yaml`: they run in each flow-run process before the flow.

A process worker starts every flow run in a Python process that runs the deployment's `pull` steps and
then imports the flow's entrypoint (which process, below). These steps make that process ready:

1. `enter_project` changes into the checkout this package was installed from, so the entrypoints
   (`flows/...py`) resolve on whichever machine runs the worker;
2. `export_secrets` puts the Secret blocks that `prefect.yaml` references into the process environment,
   where the flow's `Settings()` reads them (an empty block leaves the worker's own variable alone);
3. `admit_run` waits for a slot of the run's queue rate limit (100 starts per minute per queue by default),
   so the limit holds however the run was created: `vibe submit`, `prefect deployment run`, the UI or a
   schedule.

Step inputs are logged un-templated by Prefect; outputs never contain a secret value.

Which process runs them (Prefect 3.9.1, `prefect/workers/process.py`): when the job sets no `command`, a
process worker starts a workspace supervisor (`prefect.runner._workspace_supervisor`) that runs these steps,
flushes its logs, and then replaces itself with a fresh `python -m prefect.engine`, which imports Prefect
and the flow all over again. That second start-up is the pause after the supervisor's last log line,
`EventsWorker - Still processing items: 1 items remaining...`: the log flush (`APILogWorker.drain_all()`)
drains every Prefect queue service, the events worker too, which still holds the
`prefect.concurrency-limit.acquired` event of `admit_run`; sending it takes milliseconds, the warning is
only a sign of that drain. With a job `command` (`<python> -m prefect.engine`), the engine runs the steps
and then the flow in one process; `benchmarks/throughput.py` measures both.
"""

from __future__ import annotations

import os
from pathlib import Path

from deployments import catalog


def project_root() -> Path:
    """The checkout this package runs from (the folder holding `prefect.yaml`)."""
    return Path(__file__).resolve().parent.parent


def enter_project() -> dict[str, str]:
    """Change the working directory to the project checkout; returns `{"directory": ...}`."""
    root = project_root()
    os.chdir(root)
    return {"directory": str(root)}


def export_secrets(env: dict[str, str]) -> dict[str, list[str]]:
    """Export resolved secret values into this flow-run process's environment.

    Args:
        env: environment variable -> value; `prefect.yaml` fills the values from Secret blocks at run time.

    Returns:
        `{"exported": [names]}`: the variables that were set (never their values).
    """
    exported: list[str] = []
    for name, value in env.items():
        if isinstance(value, str) and value:
            os.environ[name] = value
            exported.append(name)
    return {"exported": sorted(exported)}


def admit_run(timeout_s: float | None = None) -> dict[str, str]:
    """Block until this flow run's queue has a start slot under its rate limit.

    Args:
        timeout_s: give up (the run fails) after this many seconds; None waits as long as it takes.

    Returns:
        `{"queue": name, "limit": limit name}`; empty when the process is not a deployment's flow run or
        its queue is not one of `critical`, `high`, `medium`, `low`.

    Raises:
        prefect.concurrency.ConcurrencySlotAcquisitionError: the queue's limit does not exist (`vibe setup`
            creates it); strict, because a missing limit would otherwise limit nothing, silently.
    """
    from prefect.client.orchestration import get_client
    from prefect.concurrency.sync import rate_limit
    from prefect.runtime import flow_run

    run_id = flow_run.id
    if not run_id:
        return {}
    with get_client(sync_client=True) as client:
        queue = client.read_flow_run(run_id).work_queue_name
    if queue not in catalog.QUEUES:
        # A queue outside the four (the pool's `default`, a queue made by hand) has no rate limit.
        return {}
    name = catalog.queue_limit_name(queue)
    # The run waits here in Pending, holding its deployment slot. Deployment limits bound the waiters (5 per
    # deployment by default), so at 100 starts per minute a wait lasts seconds, far inside the 300 s lease
    # Prefect grants a Pending run's deployment slot.
    rate_limit(name, occupy=1, timeout_seconds=timeout_s, strict=True)
    return {"queue": queue, "limit": name}
