"""Pull steps of the deployments in `prefect.yaml`: they run in each flow-run process before the flow.

A process worker starts every flow run in a Python process that runs the deployment's `pull` steps and
then imports the flow's entrypoint (which process, below). These steps make that process ready; `prefect.yaml`
runs them as one step, `prepare_run`, in this order:

1. `enter_project` changes into the checkout this package was installed from, so the entrypoints
   (`flows/...py`) resolve on whichever machine runs the worker;
2. `export_secrets` puts the Secret blocks that `prefect.yaml` names into the process environment, where the
   flow's `Settings()` reads them (an empty block leaves the worker's own variable alone): handed over by a
   prefork worker through the fork, or read in one API call (`deployments._secrets`);
3. `admit_run` takes a slot of the run's queue rate limit (100 starts per minute per queue by default), or
   puts the run back (`AwaitingRateLimit`, a Scheduled state naming the limit) and ends the process, so the
   limit holds however the run was created (`vibe submit`, `prefect deployment run`, the UI, a schedule)
   and a waiting run holds neither a process nor a deployment slot.

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

import contextlib
import os
import sys
from pathlib import Path
from typing import NoReturn

from deployments import catalog
from deployments._secrets import read_secret_values, take_handed
from vibe.errors import ConfigError

#: The state name of a run put back to wait for its queue's rate limit.
AWAITING_RATE_LIMIT = "AwaitingRateLimit"

#: The work queue the worker claimed the run from, set by the prefork launch so `admit_run` need not read the run.
QUEUE_ENV = "VIBE_FLOW_RUN_QUEUE"


def project_root() -> Path:
    """The checkout this package runs from (the folder holding `prefect.yaml`)."""
    return Path(__file__).resolve().parent.parent


def enter_project() -> dict[str, str]:
    """Change the working directory to the project checkout; returns `{"directory": ...}`."""
    root = project_root()
    os.chdir(root)
    return {"directory": str(root)}


def export_secrets(blocks: dict[str, str] | None = None, env: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Export secret values into this flow-run process's environment, where the flow's `Settings()` reads them.

    Args:
        blocks: environment variable -> Secret block name (`prefect.yaml`). A forked run takes the values its
            worker handed over through the fork (`deployments._secrets`); otherwise one API call reads them all.
        env: environment variable -> value, for values Prefect's templating already resolved
            (`{{ prefect.blocks.secret.NAME }}`: one API call per block).

    Returns:
        `{"exported": [names]}`: the variables that were set (never their values). An empty value leaves the
        worker's own variable alone.

    Raises:
        ConfigError: a Secret block in `blocks` does not exist (`vibe setup` creates them all).
    """
    values = dict(env or {})
    if blocks:
        found = take_handed(blocks.values())
        if found is None:
            from prefect.client.orchestration import get_client

            with get_client(sync_client=True) as client:
                found = read_secret_values(client, blocks.values())
        missing = sorted(set(blocks.values()) - found.keys())
        if missing:
            raise ConfigError(f"the Secret block(s) {missing} do not exist on this server: run `vibe setup`")
        values.update({name: found[block] for name, block in blocks.items()})
    exported: list[str] = []
    for name, value in values.items():
        if isinstance(value, str) and value:
            os.environ[name] = value
            exported.append(name)
    return {"exported": sorted(exported)}


def prepare_run(blocks: dict[str, str] | None = None) -> dict[str, str | list[str]]:
    """`enter_project`, `export_secrets(blocks)` and `admit_run`, as the one pull step `prefect.yaml` declares.

    One step instead of three: Prefect does work of its own around every pull step (it opens two API clients
    to resolve the step's templates and sends a step event), about 40 ms each on a 2-core machine.

    Returns:
        The three steps' outputs in one mapping: `directory`, `exported`, and `queue`/`limit` when admitted.
    """
    outputs: dict[str, str | list[str]] = {**enter_project()}
    outputs.update(export_secrets(blocks))
    outputs.update(admit_run())
    return outputs


def admit_run() -> dict[str, str]:
    """Take a start slot of this flow run's queue rate limit, or put the run back until one is free.

    Never waits in the process: when the queue's limit is spent, the run goes back to Scheduled (state
    name `AwaitingRateLimit`, scheduled when the server says a slot will be free, with a message naming the
    limit), which frees its deployment concurrency slot (the server releases it on Pending -> Scheduled),
    and this process exits at once with code 0, so no worker reports it Crashed (see `_exit_awaiting`). A
    worker picks the run up again when it is due.

    Returns:
        `{"queue": name, "limit": limit name}`; empty when the process is not a deployment's flow run or
        its queue is not one of `critical`, `high`, `medium`, `low`.

    Raises:
        ConfigError: the queue's limit does not exist (`vibe setup` creates it); strict, because a missing
            limit would otherwise limit nothing, silently.
    """
    import datetime

    import httpx
    from prefect.client.orchestration import get_client
    from prefect.logging.loggers import flow_run_logger
    from prefect.runtime import flow_run
    from prefect.states import Scheduled

    run_id = flow_run.id
    if not run_id:
        return {}
    with get_client(sync_client=True) as client:
        queue = os.environ.get(QUEUE_ENV) or client.read_flow_run(run_id).work_queue_name
        if queue not in catalog.QUEUES:
            # A queue outside the four (the pool's `default`, a queue made by hand) has no rate limit.
            return {}
        name = catalog.queue_limit_name(queue)
        try:
            response = client.increment_concurrency_slots(names=[name], slots=1, mode="rate_limit")
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code != 423:  # 423 Locked: no slot now
                raise
            wait_s = max(0.5, float(exc.response.headers.get("Retry-After", "1")))
            message = f"Waiting for the queue rate limit {name!r}: next start slot in about {wait_s:.1f} s"
            when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=wait_s)
            client.set_flow_run_state(run_id, Scheduled(scheduled_time=when, name=AWAITING_RATE_LIMIT,
                                                        message=message))  # fmt: skip
            flow_run_logger(client.read_flow_run(run_id)).info(
                "%s; back to the queue, holding no slot and no process.", message
            )
            _exit_awaiting()
        if name not in {limit.get("name") for limit in response.json()}:
            raise ConfigError(f"the queue rate limit {name!r} does not exist on this server: run `vibe setup`")
    return {"queue": queue, "limit": name}


def _exit_awaiting() -> NoReturn:
    """End this flow-run process with exit code 0, its run back in the queue.

    Not `prefect.exceptions.Abort`: Prefect wraps any exception of a pull step in `StepExecutionError` and the
    engine exits 1, which the worker reports as Crashed, overwriting the `AwaitingRateLimit` state. The run's
    log lines are flushed to the API first; then the process ends without unwinding the engine.
    """
    from prefect.logging.handlers import APILogWorker

    with contextlib.suppress(Exception):  # best effort: the state message already says why
        APILogWorker.drain_all(timeout=5)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
