"""A deployed flow for the worker-shutdown tests: a few steps that resume from a journal kept in Redis.

Each step is a task run (`probe_step`) that sleeps `step_s` seconds and is then recorded under
`{prefix}:journal:{run id}`; a step already recorded is skipped, so a run handed back mid-way and started again by
another worker does only the steps that are left, as the pipeline does with its own journal. While it works it
holds one slot of the global concurrency limit `limit_name` (when given), as an LLM call holds
`vibe-llm-<provider>`, so a test can check that a stopped run gives its slot back.
"""

from __future__ import annotations

import contextlib
import json
import time

import redis
from prefect import flow, task
from prefect.concurrency.sync import concurrency
from prefect.runtime import flow_run


@task(name="probe_step")
def probe_step(redis_url: str, prefix: str, journal: str, run_id: str, step: int, step_s: float) -> None:
    """One step: a task run, so a run handed back mid-step has a task run in flight."""
    client = redis.Redis.from_url(redis_url)
    try:
        time.sleep(step_s)
        client.sadd(journal, step)
        client.rpush(f"{prefix}:steps", json.dumps({"run": run_id, "step": step}))
    finally:
        client.close()


@flow(name="journal_probe")
def journal_probe(redis_url: str, prefix: str, steps: int = 5, step_s: float = 1.0, limit_name: str = "") -> int:
    """Do the steps of this run that its journal does not hold yet; return how many this attempt did."""
    client = redis.Redis.from_url(redis_url)
    run_id = str(flow_run.id)
    journal = f"{prefix}:journal:{run_id}"
    done_here = 0
    try:
        client.rpush(f"{prefix}:starts", json.dumps({"run": run_id, "t": time.time(), "attempt": flow_run.run_count}))
        held = concurrency(limit_name, occupy=1, strict=True) if limit_name else contextlib.nullcontext()
        with held:
            for step in range(steps):
                if client.sismember(journal, step):
                    continue
                probe_step(redis_url, prefix, journal, run_id, step, step_s)
                done_here += 1
        client.rpush(f"{prefix}:ends", json.dumps({"run": run_id, "t": time.time(), "did": done_here}))
    finally:
        client.close()
    return done_here
