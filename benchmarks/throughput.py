"""Flow runs per minute through a real Prefect server and `vibe worker`, prefork launch vs engine launch.

A trivial deployed flow (`bench_pipeline`: one completion from the replay provider, no network) is run by
`vibe worker start --launch L` for each launch L (`prefork`: forked from a warm zygote; `engine`: a new
`python -m prefect.engine` per run), on SQLite and on PostgreSQL (127.0.0.1:5432), with one worker and, on
PostgreSQL, with two. For each, measured from the API's own timestamps:

- `free_slots`: runs created one at a time on an idle worker: created -> started (p50) and the overhead per
  run, Pending (the worker claimed it) -> Running (the flow's code starts), p50;
- `batch`: N runs created at once (queue rate limits out of the way, worker `--limit`): runs per minute
  (first created -> last ended), created -> started p50/p95, and the peak memory of a run's process (RSS,
  and PSS, which shares the pages a forked child still has in common with its zygote fairly);
- `rate_limit_binds` (prefork, one worker, the real limit of `VIBE_QUEUE_RATE_PER_MINUTE`, default 100 per
  minute per queue): M runs created at once on one queue; how long until the last one started.

Prints one JSON object with the machine's load average next to each figure.

    uv run python benchmarks/throughput.py [--runs 60] [--engine-runs 12] [--limited-runs 150]
        [--launch prefork engine] [--database sqlite postgres] [--limit 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
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


LAUNCHES = ("prefork", "engine")


def _deploy(stack: LocalPrefect, home: Path) -> None:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    config["deployments"] = [
        {
            "name": "bench",
            "entrypoint": "benchmarks/bench_pipeline.py:bench_pipeline",
            "tags": ["vibe"],
            "concurrency_limit": 1000,
            "schedules": [],
            "work_pool": {"name": "vibe", "work_queue_name": "medium"},
        }
    ]
    path = home / "prefect.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all", "--prefect-file", str(path)],
        cwd=ROOT, env=stack.client_env(), check=True, capture_output=True,
    )  # fmt: skip


async def _create_runs(count: int) -> list[uuid.UUID]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        deployment = await client.read_deployment_by_name("bench_pipeline/bench")
        return [
            (await client.create_flow_run_from_deployment(deployment.id, parameters={"label": str(i)})).id
            for i in range(count)
        ]


async def _wait(ids: list[uuid.UUID], within_s: float) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async with get_client() as client:
        deadline = time.monotonic() + within_s
        while True:
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=len(ids) + 1
            )
            if len(runs) == len(ids) and all(r.state and r.state.is_final() for r in runs):
                return runs
            if time.monotonic() > deadline:
                raise TimeoutError(f"{sum(1 for r in runs if r.state and r.state.is_final())}/{len(ids)} finished")
            await asyncio.sleep(0.5)


def _run_process_memory_mb() -> dict[int, tuple[float, float]]:
    """(RSS, PSS) in MB of every flow-run process now: `prefect.engine` ones and the zygotes' children."""
    cmdlines: dict[int, bytes] = {}
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdlines[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes()
            status = Path(f"/proc/{entry}/status").read_text()
            parents[int(entry)] = int(next(x for x in status.splitlines() if x.startswith("PPid:")).split()[1])
        except (OSError, StopIteration):
            continue
    sizes: dict[int, tuple[float, float]] = {}
    for pid, cmd in cmdlines.items():
        forked = b"deployments._zygote" in cmd and b"deployments._zygote" in cmdlines.get(parents.get(pid, 0), b"")
        if b"prefect.engine" not in cmd and not forked:
            continue
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        values = {
            line.split(":")[0]: int(line.split()[1]) / 1024 for line in rollup if line.split(":")[0] in ("Rss", "Pss")
        }
        if "Rss" in values and "Pss" in values:
            sizes[pid] = (values["Rss"], values["Pss"])
    return sizes


async def _state_times(run_id: uuid.UUID) -> dict[str, float]:
    """The first timestamp (epoch s) of each state name the run went through."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        states = await client.read_flow_run_states(run_id)
    first: dict[str, float] = {}
    for state in sorted(states, key=lambda s: s.timestamp):
        first.setdefault(state.name, state.timestamp.timestamp())
    return first


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _free_slots(samples: int) -> dict[str, Any]:
    created_to_started, overhead = [], []
    for _ in range(samples):
        (run,) = asyncio.run(_wait(asyncio.run(_create_runs(1)), 300))
        times = asyncio.run(_state_times(run.id))
        created_to_started.append(run.start_time.timestamp() - run.created.timestamp())
        overhead.append(times["Running"] - times["Pending"])
    return {
        "runs": samples,
        "created_to_started_p50_s": _pct(created_to_started, 0.5),
        "overhead_pending_to_running_p50_s": _pct(overhead, 0.5),
        "load": _load(),
    }


def _batch(runs: int) -> dict[str, Any]:
    peak: dict[int, tuple[float, float]] = {}
    load = _load()
    started = time.time()
    ids = asyncio.run(_create_runs(runs))
    deadline = time.monotonic() + 1200
    while True:
        for pid, (rss, pss) in _run_process_memory_mb().items():
            old = peak.get(pid, (0.0, 0.0))
            peak[pid] = (max(rss, old[0]), max(pss, old[1]))
        try:
            finished = asyncio.run(_wait(ids, 0.0))
            break
        except TimeoutError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.3)
    completed = [r for r in finished if r.state.is_completed()]
    elapsed = max(r.end_time.timestamp() for r in finished) - started
    waits = [r.start_time.timestamp() - r.created.timestamp() for r in completed]
    return {
        "runs": runs,
        "completed": len(completed),
        "elapsed_s": round(elapsed, 1),
        "runs_per_minute": round(len(completed) / elapsed * 60, 1),
        "created_to_started_p50_s": _pct(waits, 0.5),
        "created_to_started_p95_s": _pct(waits, 0.95),
        "run_process_peak_rss_mb": round(statistics.median(v[0] for v in peak.values()), 1) if peak else None,
        "run_process_peak_pss_mb": round(statistics.median(v[1] for v in peak.values()), 1) if peak else None,
        "load": [load, _load()],
    }


def _rate_limit_binds(runs: int) -> dict[str, Any]:
    load = _load()
    ids = asyncio.run(_create_runs(runs))
    finished = asyncio.run(_wait(ids, 1200))
    starts = sorted(r.start_time.timestamp() for r in finished if r.start_time)
    first_created = min(r.created.timestamp() for r in finished)
    return {
        "runs": runs,
        "completed": sum(1 for r in finished if r.state.is_completed()),
        "created_to_last_started_s": round(starts[-1] - first_created, 1),
        "starts_per_minute": round((len(starts) - 1) / (starts[-1] - starts[0]) * 60, 1),
        "load": [load, _load()],
    }


def _measure(stack: LocalPrefect, launch: str, workers: int, runs: int, samples: int, limit: int) -> dict[str, Any]:
    procs = [stack.start_vibe_worker("vibe", name=f"bench-{launch}-{i}", limit=limit, launch=launch, cwd=ROOT)
             for i in range(workers)]  # fmt: skip
    try:
        asyncio.run(_wait(asyncio.run(_create_runs(workers)), 300))  # warm-up: page cache, zygotes ready
        return {"workers": workers, "free_slots": _free_slots(samples), "batch": _batch(runs)}
    finally:
        for proc in procs:
            stop_process_group(proc, grace_s=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=60, help="runs in a prefork batch")
    parser.add_argument("--engine-runs", type=int, default=12, help="runs in an engine batch (~10x slower)")
    parser.add_argument("--samples", type=int, default=5, help="runs one at a time on an idle worker")
    parser.add_argument("--limited-runs", type=int, default=150, help="runs at once under the real queue limit")
    parser.add_argument("--limit", type=int, default=10, help="each worker's --limit (runs at once)")
    parser.add_argument("--launch", nargs="+", choices=LAUNCHES, default=list(LAUNCHES))
    parser.add_argument("--database", nargs="+", choices=("sqlite", "postgres"), default=["sqlite", "postgres"])
    parser.add_argument("--two-workers", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure two workers on PostgreSQL")  # fmt: skip
    args = parser.parse_args()

    home_root = Path(tempfile.mkdtemp(prefix="vibe-throughput-"))
    cassette = home_root / "cassette.json"
    _write_cassette(cassette)
    env = {
        "VIBE_REPLAY": "replay",
        "VIBE_CASSETTE": str(cassette),
        "VIBE_CACHE_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_LOGGING_TO_API_ENABLED": "false",
    }
    report: dict[str, Any] = {"cpus": os.cpu_count(), "load_at_start": _load()}
    for database in args.database:
        home = home_root / database
        with LocalPrefect(home, database=database, env=env) as stack:
            from prefect.settings import PREFECT_API_URL, temporary_settings

            with temporary_settings({PREFECT_API_URL: stack.api_url}):
                settings = Settings(prefect_api_url=stack.api_url)
                # The engine's capacity is measured with the queue limits out of the way...
                asyncio.run(setup(settings.model_copy(update={"queue_rate_per_minute": 100_000})))
                _deploy(stack, home)
                result: dict[str, Any] = {}
                shapes = [1, 2] if database == "postgres" and args.two_workers else [1]
                for workers in shapes:
                    for launch in args.launch:
                        runs = args.runs if launch == "prefork" else args.engine_runs
                        key = f"{launch}_{workers}_worker{'s' if workers > 1 else ''}"
                        result[key] = _measure(stack, launch, workers, runs, args.samples, args.limit)
                        print(json.dumps({database: {key: result[key]}}), file=sys.stderr)
                if args.limited_runs and database == args.database[0] and "prefork" in args.launch:
                    # ...and then through the real limit: 100 starts per minute per queue by default.
                    asyncio.run(setup(settings))
                    proc = stack.start_vibe_worker("vibe", name="bench-limited", limit=args.limit, cwd=ROOT)
                    try:
                        asyncio.run(_wait(asyncio.run(_create_runs(1)), 300))
                        time.sleep(60 / settings.queue_rate_per_minute * 12)  # let the bucket refill
                        result["rate_limit_binds"] = {
                            "queue_rate_per_minute": settings.queue_rate_per_minute,
                            **_rate_limit_binds(args.limited_runs),
                        }
                    finally:
                        stop_process_group(proc, grace_s=30)
                report[database] = result
    print(json.dumps(report))


if __name__ == "__main__":
    main()
