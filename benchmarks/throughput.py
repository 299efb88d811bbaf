"""Sustained runs per minute through a real Prefect server and workers, and the per-run overhead.

A trivial pipeline (one completion from the replay provider, no network) goes through two designs:

1. `process_worker`: the deployed flow `bench_pipeline` on the `vibe` pool, run by `prefect worker start`,
   once per launch mode (`--launch`):
   - `supervisor`: Prefect 3.9's default when the job sets no `command`: a workspace supervisor process runs
     the pull steps, then replaces itself with a fresh `python -m prefect.engine`, so every run starts
     Python (and imports Prefect) twice;
   - `engine`: the job variable `command` is `<this interpreter> -m prefect.engine`: the engine runs the
     pull steps and the flow in one process.
   For each: per-run overhead measured one run at a time (creation -> Completed minus the flow's own time,
   and the medians of Pending -> Running and Running -> Completed), then the sustained rate of a batch, and
   the peak memory of a run process.
2. `background_tasks`: the same step as a Prefect background task, submitted with `Task.delay` and run by
   a long-lived task worker (`prefect.task_worker.serve`): the sustained rate of a batch, then the rate of
   a batch admitted through the queue's real rate limit (`vibe-queue-<queue>`, default 100 per minute)
   to show that limit, not the engine, sets the pace.

The server runs on PostgreSQL at 127.0.0.1:5432 when it answers (a private database, dropped at the end),
else SQLite. Prints one JSON object.

    uv run python benchmarks/throughput.py [--runs 20] [--tasks 200] [--workers 2] [--limited-tasks 170]
        [--launch supervisor engine] [--overhead-samples 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from deployments.localstack import LocalPrefect, stop_process_group
from deployments.setup import setup
from providers.base import CompletionResponse, Usage
from providers.replay import Cassette
from vibe.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def _write_cassette(path: Path) -> None:
    from bench_pipeline import MODEL, request

    answer = "def add(a, b):\n    return a + b\n"
    Cassette(path).put(request(), MODEL, CompletionResponse(text=answer, provider="replay", model=MODEL, usage=Usage()))


# Launch mode -> the job variables of its deployment (`bench_pipeline/bench-<mode>`).
LAUNCHES: dict[str, dict[str, Any]] = {
    "supervisor": {},
    "engine": {"command": f"{sys.executable} -m prefect.engine"},
}


def _deploy(stack: LocalPrefect, home: Path) -> None:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    config["deployments"] = [
        {
            "name": f"bench-{launch}",
            "entrypoint": "benchmarks/bench_pipeline.py:bench_pipeline",
            "tags": ["vibe"],
            "concurrency_limit": 1000,
            "work_pool": {"name": "vibe", "work_queue_name": "medium", "job_variables": job_variables},
        }
        for launch, job_variables in LAUNCHES.items()
    ]
    path = home / "prefect.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all", "--prefect-file", str(path)],
        cwd=ROOT, env=stack.client_env(), check=True, capture_output=True,
    )  # fmt: skip


async def _create_runs(count: int, launch: str) -> tuple[list[uuid.UUID], float]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        deployment = await client.read_deployment_by_name(f"bench_pipeline/bench-{launch}")
        started = time.time()
        ids = [
            (await client.create_flow_run_from_deployment(deployment.id, parameters={"label": str(i)})).id
            for i in range(count)
        ]
    return ids, started


async def _wait(ids: list[uuid.UUID], within_s: float) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async with get_client() as client:
        deadline = time.monotonic() + within_s
        while True:
            runs = await client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
            if len(runs) == len(ids) and all(r.state and r.state.is_final() for r in runs):
                return runs
            if time.monotonic() > deadline:
                raise TimeoutError(f"{sum(1 for r in runs if r.state and r.state.is_final())}/{len(ids)} finished")
            await asyncio.sleep(0.5)


def _engine_rss_mb() -> dict[int, float]:
    """RSS (MB) of every `prefect.engine` process (a process worker's flow-run processes) now."""
    sizes: dict[int, float] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"prefect.engine" not in cmd:
                continue
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes[int(pid)] = int(line.split()[1]) / 1024
        except OSError:
            continue
    return sizes


async def _state_gaps(run_id: uuid.UUID) -> tuple[float, float]:
    """Seconds from the run's first Pending to Running, and from Running to Completed."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        states = await client.read_flow_run_states(run_id)
    first: dict[str, Any] = {}
    for state in sorted(states, key=lambda s: s.timestamp):
        first.setdefault(state.name, state.timestamp)
    return (
        (first["Running"] - first["Pending"]).total_seconds(),
        (first["Completed"] - first["Running"]).total_seconds(),
    )


def _process_worker(runs: int, overhead_samples: int, launch: str) -> dict[str, Any]:
    # Warm-up: the first run pays for imports the page cache has not seen yet.
    asyncio.run(_wait(asyncio.run(_create_runs(1, launch))[0], 300))

    overheads, own, to_running, to_completed = [], [], [], []
    for _ in range(overhead_samples):
        ids, _started = asyncio.run(_create_runs(1, launch))
        (run,) = asyncio.run(_wait(ids, 300))
        total = (run.end_time - run.created).total_seconds()
        flow_time = (run.end_time - run.start_time).total_seconds()
        overheads.append(total - flow_time)
        own.append(flow_time)
        pending_running, running_completed = asyncio.run(_state_gaps(run.id))
        to_running.append(pending_running)
        to_completed.append(running_completed)

    peak: dict[int, float] = {}
    ids, started = asyncio.run(_create_runs(runs, launch))
    deadline = time.monotonic() + 900
    while True:
        for pid, mb in _engine_rss_mb().items():
            peak[pid] = max(mb, peak.get(pid, 0.0))
        try:
            finished = asyncio.run(_wait(ids, 0.0))
            break
        except TimeoutError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.5)
    elapsed = max(r.end_time.timestamp() for r in finished) - started
    completed = sum(1 for r in finished if r.state.is_completed())
    return {
        "runs": runs,
        "completed": completed,
        "elapsed_s": round(elapsed, 2),
        "runs_per_minute": round(completed / elapsed * 60, 1),
        "per_run_overhead_s": round(statistics.median(overheads), 2),
        "pending_to_running_s": round(statistics.median(to_running), 2),
        "running_to_completed_s": round(statistics.median(to_completed), 2),
        "flow_own_time_s": round(statistics.median(own), 3),
        "run_process_peak_rss_mb": round(statistics.median(peak.values()), 1) if peak else None,
    }


def _background_tasks(stack: LocalPrefect, tasks: int, limited: int, limit_name: str, burst: int) -> dict[str, Any]:
    from bench_pipeline import bench_step

    server = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "bench_pipeline.py"), "20"],
        cwd=ROOT, env=stack.client_env(), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(5)  # the task worker subscribes before work arrives
        bench_step.delay("warm-up").result(timeout=120)
        results: dict[str, Any] = {"task_worker_concurrency": 20}
        for name, count, limit in (("unlimited", tasks, None), ("through_queue_rate_limit", limited, limit_name)):
            if count <= 0:
                continue
            started = time.time()
            # Submitting is an API call each: several submitters, as several clients would be.
            # Each submission carries this thread's Prefect settings context (the API URL) to its thread.
            with ThreadPoolExecutor(max_workers=8) as pool:
                submitted = [
                    pool.submit(contextvars.copy_context().run, bench_step.delay, str(i), limit) for i in range(count)
                ]
                futures = [s.result() for s in submitted]
            finished = sorted(float(future.result(timeout=900)) for future in futures)
            elapsed = finished[-1] - started
            entry: dict[str, Any] = {
                "tasks": count,
                "completed": len(finished),
                "elapsed_s": round(elapsed, 2),
                "runs_per_minute": round(len(finished) / elapsed * 60, 1),
            }
            if limit is not None and count > burst:
                # A full bucket admits `burst` at once; after that the decay sets the sustained pace.
                tail = finished[burst:]
                entry["burst"] = burst
                pace = len(tail) / (tail[-1] - finished[burst - 1]) * 60
                entry["sustained_runs_per_minute_after_burst"] = round(pace, 1)
            results[name] = entry
        return results
    finally:
        stop_process_group(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="flow runs in the process-worker batch")
    parser.add_argument("--workers", type=int, default=2, help="process workers")
    parser.add_argument("--overhead-samples", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=200, help="background tasks without a rate limit")
    parser.add_argument("--limited-tasks", type=int, default=170, help="background tasks through the queue limit")
    parser.add_argument("--database", choices=("auto", "postgres", "sqlite"), default="auto")
    parser.add_argument(
        "--launch", nargs="+", choices=tuple(LAUNCHES), default=list(LAUNCHES),
        help="how the worker starts a run's process (see the module docstring); each is measured in turn",
    )  # fmt: skip
    args = parser.parse_args()

    # The machine may be shared: the load says how far the figures are from an idle machine's.
    load_before = round(os.getloadavg()[0], 2)
    home = Path(tempfile.mkdtemp(prefix="vibe-throughput-"))
    cassette = home / "cassette.json"
    _write_cassette(cassette)
    storage = home / "results"
    env = {
        "VIBE_REPLAY": "replay",
        "VIBE_CASSETTE": str(cassette),
        "VIBE_CACHE_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_LOGGING_TO_API_ENABLED": "false",
        "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
        "PREFECT_LOCAL_STORAGE_PATH": str(storage),
    }
    with LocalPrefect(home, database=args.database, env=env) as stack:
        from prefect.settings import (
            PREFECT_API_URL,
            PREFECT_LOCAL_STORAGE_PATH,
            PREFECT_RESULTS_PERSIST_BY_DEFAULT,
            temporary_settings,
        )

        overrides = {PREFECT_API_URL: stack.api_url, PREFECT_RESULTS_PERSIST_BY_DEFAULT: True,
                     PREFECT_LOCAL_STORAGE_PATH: storage}  # fmt: skip
        with temporary_settings(overrides):
            settings = Settings(prefect_api_url=stack.api_url)
            # The engine's capacity is measured with the queue limits out of the way...
            asyncio.run(setup(settings.model_copy(update={"queue_rate_per_minute": 100_000})))
            _deploy(stack, home)
            for i in range(args.workers):
                stack.start_worker("vibe", name=f"bench-{i}", cwd=ROOT)
            process: dict[str, Any] = {"workers": args.workers}
            for launch in args.launch:
                process[launch] = _process_worker(args.runs, args.overhead_samples, launch)
            # ...and then the background tasks go through the real limit, 100 per minute per queue.
            asyncio.run(setup(settings))
            tasks = _background_tasks(
                stack, args.tasks, args.limited_tasks, "vibe-queue-medium", settings.queue_rate_per_minute
            )
        database = "postgresql" if stack.database_url.startswith("postgresql") else "sqlite"
    print(json.dumps({
        "database": database,
        "cpus": os.cpu_count(),
        "load_average_at_start_and_end": [load_before, round(os.getloadavg()[0], 2)],
        "queue_rate_limit_per_minute": settings.queue_rate_per_minute,
        "process_worker": process,
        "background_tasks": tasks,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
