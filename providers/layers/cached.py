"""The cache layer: answers from the LLM cache, and identical concurrent requests make one provider call.

Key: `cache_key(cache.prefix, request, <the requested model's provider:model>)`, so an alias and its target
are one entry, and a fallback's answer is cached under the request's key. Stored in the shape of a hit
(`cached=True`, `attempts=0`, `cost_usd=0.0`). Single-flight: an `asyncio.Lock` per key in this process, and
the cache's own lock across processes (see `providers/cache.py`). A failing cache is used as no cache: one
warning per process and location, and the request goes to the layer below.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

from providers.base import CompletionRequest, CompletionResponse
from providers.cache import LLMCache, warn_unavailable
from providers.canonical import cache_key
from providers.layers.base import DEFAULT_OPTIONS, CallOptions, Model, Router
from vibe.errors import CacheError


@dataclass
class _Flight:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class CachedModel:
    """Answers from `cache` when it can, else from `inner`, and stores what `inner` answered.

    Args:
        inner: the layer below (the fallback layer).
        cache: the LLM cache; None turns this layer into a pass-through (`VIBE_CACHE_ENABLED=false`).
        router: resolves the requested model for the key.
        lock_ttl_s: how long the cross-process single-flight lock lives (and the most a waiter waits).
    """

    def __init__(self, inner: Model, cache: LLMCache | None, router: Router, *, lock_ttl_s: float) -> None:
        self._inner = inner
        self._cache = cache
        self._router = router
        self._lock_ttl_s = lock_ttl_s
        self._flights: dict[str, _Flight] = {}

    async def complete(self, request: CompletionRequest, options: CallOptions = DEFAULT_OPTIONS) -> CompletionResponse:
        cache = self._cache if options.use_cache else None
        if cache is None:
            return await self._inner.complete(request, options)
        key = cache_key(cache.prefix, request, self._router.resolve(request.model).id)
        try:
            hit = await cache.get(key)
        except CacheError as exc:
            warn_unavailable(cache.location, exc)
            return await self._inner.complete(request, options)
        if hit is not None:
            return hit
        async with self._local_flight(key), AsyncExitStack() as stack:
            degraded = False
            try:
                await stack.enter_async_context(cache.lock(key, ttl_s=self._lock_ttl_s))
                # Whoever held the lock before us may have answered this request meanwhile.
                hit = await cache.peek(key)
            except CacheError as exc:
                warn_unavailable(cache.location, exc)
                degraded = True
            if hit is not None:
                return hit
            response = await self._inner.complete(request, options)
            if not degraded:
                await _store(cache, key, response)
            return response

    @asynccontextmanager
    async def _local_flight(self, key: str) -> AsyncIterator[None]:
        # Identical requests of this process queue here and wake at once when the first one is answered;
        # other processes meet at the cache's lock.
        flight = self._flights.get(key)
        if flight is None:
            flight = self._flights[key] = _Flight()
        flight.users += 1
        try:
            async with flight.lock:
                yield
        finally:
            flight.users -= 1
            if flight.users == 0:
                del self._flights[key]


async def _store(cache: LLMCache, key: str, response: CompletionResponse) -> None:
    # Stored in the shape of a hit, so the hit path is a single parse with no copy.
    as_hit = response.model_copy(
        update={"cached": True, "attempts": 0, "cost_usd": None if response.cost_usd is None else 0.0}
    )
    try:
        await cache.put(key, as_hit)
    except CacheError as exc:
        warn_unavailable(cache.location, exc)
