"""The trivial pipeline that benchmarks/throughput.py pushes through Prefect, in two shapes.

One step: a completion from the replay provider (a cassette the benchmark writes; no network), with the
LLM cache off so every run really goes through the provider manager. `bench_pipeline` is the flow a process
worker runs, one process per run; `bench_step` is the same work as a background task, run by a long-lived
task worker (`prefect.task_worker.serve`) and submitted with `Task.delay`.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import rate_limit

from providers.base import CompletionRequest
from providers.manager import ProviderManager
from vibe.settings import Settings

MODEL = "replay:bench"
PROMPT = "Write a function add(a, b) that returns the sum."


def request() -> CompletionRequest:
    return CompletionRequest.of(PROMPT, model=MODEL, max_tokens=64)


async def _complete() -> str:
    async with ProviderManager(Settings()) as manager:
        response = await manager.complete(request(), use_cache=False)
    return response.text


@flow(name="bench_pipeline")
def bench_pipeline(label: str = "") -> int:
    """One replayed completion; returns the length of the answer."""
    return len(asyncio.run(_complete()))


@task(name="bench_step", cache_policy=NO_CACHE, persist_result=True)
def bench_step(label: str = "", limit_name: str | None = None) -> float:
    """The same step as a background task; with `limit_name`, admitted by that rate limit first.

    Returns when it finished (epoch seconds), so the benchmark can measure rates over time.
    """
    if limit_name:
        rate_limit(limit_name, strict=True)
    if not asyncio.run(_complete()):
        raise RuntimeError("empty answer from the replay provider")
    return time.time()


if __name__ == "__main__":
    from prefect.task_worker import serve

    serve(bench_step, limit=int(sys.argv[1]) if len(sys.argv) > 1 else 10)
