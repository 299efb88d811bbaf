"""The LLM cache backends on their own: entries, TTL, counters, clear, single-flight locks, cooldowns.

Both backends run the same tests: Redis (real server, private prefix) and the embedded SQLite store (tmp_path).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis

from providers.base import CompletionRequest, CompletionResponse, Usage
from providers.cache import EmbeddedCache, LLMCache, RedisCache, open_cache
from providers.canonical import cache_key
from providers.cooldowns import CooldownStore, shared_cooldowns
from vibe.redact import redact_url
from vibe.settings import Settings

RESPONSE = CompletionResponse(
    text="hello",
    provider="anthropic",
    model="anthropic:claude-sonnet-4-6",
    usage=Usage(input_tokens=3, output_tokens=1),
)


def _key(prefix: str, prompt: str = "hi") -> str:
    return cache_key(prefix, CompletionRequest.of(prompt, model="smart"), "anthropic:claude-sonnet-4-6")


pytestmark = pytest.mark.anyio


def _cooldowns(cache: LLMCache) -> CooldownStore:
    """The cooldown store kept on the cache's backend (moved out of the cache's own interface)."""
    store = shared_cooldowns(cache)
    assert store is not None
    return store

MakeCache = Callable[[str], LLMCache]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["redis", "embedded"])
def make_cache(request: pytest.FixtureRequest, tmp_path: Path) -> MakeCache:
    """Builds caches of one backend (per param) for any prefix; every prefix is cleaned by the fixtures."""
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")
        return lambda prefix: RedisCache(url, prefix=prefix, ttl_s=60)
    return lambda prefix: EmbeddedCache(tmp_path / "cache.sqlite3", prefix=prefix, ttl_s=60)


@pytest.fixture
async def cache(make_cache: MakeCache, request: pytest.FixtureRequest) -> AsyncIterator[LLMCache]:
    # The redis_prefix fixture deletes every key under it after the test (and nothing else).
    prefix: str = request.getfixturevalue("redis_prefix")
    store = make_cache(prefix)
    yield store
    await store.aclose()


async def test_put_then_get_counts_a_miss_and_a_hit(cache: LLMCache, redis_prefix: str) -> None:
    key = _key(redis_prefix)
    assert await cache.get(key) is None
    await cache.put(key, RESPONSE)
    assert await cache.get(key) == RESPONSE
    assert await cache.peek(key) == RESPONSE  # peeks are not counted
    stats = await cache.stats()
    assert (stats.hits, stats.misses, stats.keys, stats.hit_rate) == (1, 1, 1, 0.5)
    assert stats.as_dict()["hit_rate"] == 0.5


async def test_clear_deletes_entries_and_counters_of_this_prefix_only(
    cache: LLMCache, redis_prefix: str, make_cache: MakeCache
) -> None:
    prefix = redis_prefix
    await cache.put(_key(prefix, "a"), RESPONSE)
    await cache.put(_key(prefix, "b"), RESPONSE)
    await cache.get(_key(prefix, "a"))
    await _cooldowns(cache).cool("openai", 30)
    neighbour = make_cache(f"{prefix}x")
    try:
        await neighbour.put(_key(f"{prefix}x", "a"), RESPONSE)
        assert await cache.clear() >= 2
        stats = await cache.stats()
        assert (stats.hits, stats.misses, stats.keys) == (0, 0, 0)
        assert await cache.get(_key(prefix, "a")) is None
        # Another prefix that merely starts the same, and this prefix's cooldowns, are untouched.
        assert await neighbour.peek(_key(f"{prefix}x", "a")) == RESPONSE
        left = await _cooldowns(cache).cooling("openai")
        assert left is not None
        assert left > 0
    finally:
        await neighbour.clear()
        await neighbour.aclose()


async def test_entries_expire_after_the_ttl(redis_url: str, redis_prefix: str, tmp_path: Path) -> None:
    key = _key(redis_prefix)
    store = RedisCache(redis_url, prefix=redis_prefix, ttl_s=5)
    try:
        await store.put(key, RESPONSE)
        ttl_ms = redis.Redis.from_url(redis_url).pttl(key)
        assert 0 < ttl_ms <= 5000
    finally:
        await store.aclose()
    embedded = EmbeddedCache(tmp_path / "c.sqlite3", prefix="p", ttl_s=1)
    try:
        await embedded.put(_key("p"), RESPONSE)
        assert await embedded.peek(_key("p")) == RESPONSE
        await asyncio.sleep(1.1)
        assert await embedded.get(_key("p")) is None
        assert (await embedded.stats()).keys == 0
    finally:
        await embedded.aclose()


async def test_lock_is_exclusive_and_a_waiter_gets_it_after_release(cache: LLMCache, redis_prefix: str) -> None:
    key = _key(redis_prefix)
    order: list[str] = []
    first_holds = asyncio.Event()

    async def first() -> None:
        async with cache.lock(key, ttl_s=10) as held:
            assert held
            first_holds.set()
            await asyncio.sleep(0.2)
            order.append("first done")

    async def second() -> None:
        await first_holds.wait()
        async with cache.lock(key, ttl_s=10) as held:
            assert held
            order.append("second holds")

    await asyncio.gather(first(), second())
    assert order == ["first done", "second holds"]


async def test_a_waiter_stops_waiting_when_the_answer_appears(cache: LLMCache, redis_prefix: str) -> None:
    key = _key(redis_prefix)
    holder_stored = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with cache.lock(key, ttl_s=30) as held:
            assert held
            await cache.put(key, RESPONSE)
            holder_stored.set()
            await release.wait()  # still holding the lock

    async def waiter() -> bool:
        await holder_stored.wait()
        async with cache.lock(key, ttl_s=30) as held:
            return held

    task = asyncio.create_task(holder())
    # The waiter comes back while the holder still holds the lock: it found the answer, not the lock.
    assert await asyncio.wait_for(waiter(), timeout=20) is False
    assert await cache.peek(key) == RESPONSE
    release.set()
    await task


async def test_a_waiter_gives_up_after_the_lock_ttl(cache: LLMCache, redis_prefix: str) -> None:
    key = _key(redis_prefix)
    async with cache.lock(key, ttl_s=30) as held:
        assert held
        # A second caller with a short bound proceeds without the lock instead of waiting 30 s.
        async with cache.lock(key, ttl_s=0.3) as second_held:
            assert not second_held


async def test_an_expired_lock_is_taken_over_and_its_old_holder_cannot_release_it(
    cache: LLMCache, redis_prefix: str
) -> None:
    key = _key(redis_prefix)
    slow = cache.lock(key, ttl_s=0.2)
    assert await slow.__aenter__()
    await asyncio.sleep(0.3)  # the slow holder's lock expired: the next caller takes it over
    async with cache.lock(key, ttl_s=5) as taken_over:
        assert taken_over
        await slow.__aexit__(None, None, None)  # the slow holder finishes: its release must not free our lock
        async with cache.lock(key, ttl_s=0.2) as third:
            assert not third
    async with cache.lock(key, ttl_s=0.2) as after_release:
        assert after_release


async def test_cooldowns(cache: LLMCache, redis_prefix: str) -> None:
    cooldowns = _cooldowns(cache)
    assert await cooldowns.cooling("anthropic") is None
    await cooldowns.cool("anthropic", 30)
    left = await cooldowns.cooling("anthropic")
    assert left is not None
    assert 0 < left <= 30
    assert await cooldowns.cooling("openai") is None


async def test_open_cache_picks_redis_or_embedded_and_says_so(
    redis_url: str, redis_prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    remote = open_cache(Settings(redis_url=redis_url, cache_prefix=redis_prefix, home=tmp_path))
    assert isinstance(remote, RedisCache)
    await remote.aclose()
    with caplog.at_level(logging.INFO, logger="vibe.providers.cache"):
        local = open_cache(Settings(redis_url=None, home=tmp_path))
    assert isinstance(local, EmbeddedCache)
    assert (await local.stats()).backend == "embedded"
    assert any("no REDIS_URL configured" in r.getMessage() for r in caplog.records)
    await local.aclose()


def test_redis_url_passwords_are_not_shown() -> None:
    assert redact_url("redis://:hunter22@cache.internal:6380/2") == "redis://***@cache.internal:6380/2"
    assert redact_url("rediss://app:hunter22@cache.internal/0") == "rediss://app:***@cache.internal/0"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
