"""Latency of an LLM cache hit through `ProviderManager.complete` against a raw redis-py GET of the same payload.

Prints one JSON object: p50/p95 in milliseconds of both, and `ratio` = hit p50 / GET p50. Targets: ratio <= 2
(goal 1.5) and a hit p50 under 1 ms. Runs against real Redis (`REDIS_URL`, else 127.0.0.1:6379) under a private
prefix that is deleted afterwards. The two measurements alternate, so load on the machine affects both alike.

    uv run python benchmarks/cache_hit.py [--iterations N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from providers.base import CompletionRequest, CompletionResponse, Usage
from providers.canonical import cache_key
from providers.manager import ProviderManager
from vibe.redact import redact_url
from vibe.settings import Settings


class _OneAnswer:
    """Answers the warm-up miss; the measured calls are all hits and never reach it."""

    name = "anthropic"

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        return CompletionResponse(
            text="def add(a: int, b: int) -> int:\n    return a + b\n" * 20,
            provider=self.name,
            model=request.model,
            usage=Usage(input_tokens=850, output_tokens=420),
            stop_reason="end_turn",
        )

    async def aclose(self) -> None:
        return None


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(iterations: int, url: str) -> dict[str, object]:
    prefix = f"vibe-bench:{uuid.uuid4().hex[:12]}"
    settings = Settings(redis_url=url, cache_prefix=prefix, fallbacks=(), home=Path("/tmp/vibe-bench-home"))
    request = CompletionRequest.of("Write a function that adds two integers.", model="smart", system="Be terse.")
    raw = aioredis.Redis.from_url(url)
    try:
        async with ProviderManager(settings, providers={"anthropic": _OneAnswer()}) as manager:
            first = await manager.complete(request)
            assert not first.cached
            key = cache_key(prefix, request, first.model)
            payload = await raw.get(key)
            assert payload is not None
            for _ in range(200):  # warm both connection pools and the code paths
                await manager.complete(request)
                await raw.get(key)
            hits: list[float] = []
            gets: list[float] = []
            clock = time.perf_counter_ns
            for _ in range(iterations):
                start = clock()
                response = await manager.complete(request)
                hits.append((clock() - start) / 1e6)
                start = clock()
                await raw.get(key)
                gets.append((clock() - start) / 1e6)
                assert response.cached
    finally:
        keys = [k async for k in raw.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await raw.delete(*keys)
        await raw.aclose()
    hit_p50, get_p50 = statistics.median(hits), statistics.median(gets)
    return {
        "benchmark": "cache_hit",
        "redis": redact_url(url),
        "iterations": iterations,
        "payload_bytes": len(payload),
        "hit_p50_ms": round(hit_p50, 4),
        "hit_p95_ms": round(_percentile(hits, 0.95), 4),
        "raw_get_p50_ms": round(get_p50, 4),
        "raw_get_p95_ms": round(_percentile(gets, 0.95), 4),
        "ratio": round(hit_p50 / get_p50, 3),
        "ratio_p95": round(_percentile(hits, 0.95) / _percentile(gets, 0.95), 3),
        "targets": {"ratio_max": 2.0, "ratio_goal": 1.5, "hit_p50_ms_max": 1.0},
        "meets_targets": hit_p50 / get_p50 <= 2.0 and hit_p50 < 1.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3000)
    args = parser.parse_args()
    # A benchmark is an entry point: it reads its one setting from the environment itself.
    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    print(json.dumps(asyncio.run(run(args.iterations, url))))


if __name__ == "__main__":
    main()
