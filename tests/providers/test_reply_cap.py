"""The reply size cap (issue #11): a reply over `VIBE_MAX_REPLY_BYTES` is refused before it is cached or recorded.

End to end through the real SDKs against the fake LLM server: the primary model sends a 3 MB reply, the
fallback a normal one. Nothing of the oversize reply may reach Redis, the embedded cache or the cassette.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from providers.base import CompletionRequest, CompletionResponse
from providers.cache import EmbeddedCache, LLMCache, RedisCache
from providers.canonical import cache_key
from providers.manager import ProviderManager
from tests.fakes.llm_server import FakeLLMServer, ok, prompt_of
from vibe.errors import ProviderError
from vibe.settings import Settings

pytestmark = pytest.mark.anyio

MARKER = "OVERSIZE-REPLY-"
HUGE = MARKER * (3_000_000 // len(MARKER) + 1)  # a little over 3 MB of ASCII
CAP = 2_000_000


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(responder=lambda body: f"echo: {prompt_of(body)}") as fake:
        yield fake


def _settings(server: FakeLLMServer, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "home": tmp_path / "home",
        "redis_url": None,
        "replay": "record",
        "cassette": tmp_path / "cassette.json",
        "anthropic_api_key": "sk-ant-test-cap",
        "openai_api_key": "sk-openai-test-cap",
        "anthropic_base_url": server.anthropic_base_url,
        "openai_base_url": server.openai_base_url,
        "fallbacks": (),
        "llm_retry_base_s": 0.001,
        "max_reply_bytes": CAP,
    }
    values.update(overrides)
    return Settings(**values)


def _backend(backend: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    if backend == "redis":
        url: str = request.getfixturevalue("redis_url")
        prefix: str = request.getfixturevalue("redis_prefix")
        return {"redis_url": url, "cache_prefix": prefix}
    return {}


def _stored_values(config: Settings) -> list[bytes]:
    """Every value under the cache prefix: Redis keys of the prefix, or every row of the embedded store."""
    if config.redis_url:
        client = redis.Redis.from_url(config.redis_url)
        try:
            keys = list(client.scan_iter(match=f"{config.cache_prefix}:*"))
            return [client.get(k) or b"" for k in keys if client.type(k) == b"string"]
        finally:
            client.close()
    path = config.home / "llm-cache.sqlite3"
    with sqlite3.connect(path) as db:
        return [bytes(row[0]) for row in db.execute("SELECT value FROM llm_entries")]


def _cassette_text(config: Settings) -> str:
    assert config.cassette is not None
    return config.cassette.read_text(encoding="utf-8") if config.cassette.exists() else ""


@pytest.mark.parametrize("backend", ["redis", "embedded"])
async def test_an_oversize_reply_is_never_cached_or_recorded_and_fails_over(
    backend: str, request: pytest.FixtureRequest, server: FakeLLMServer, tmp_path: Path
) -> None:
    config = _settings(server, tmp_path, **_backend(backend, request))
    server.enqueue(ok(HUGE))  # the primary (anthropic) answers 3 MB; the fallback (openai) echoes
    question = CompletionRequest.of("hello", model="fast")
    async with ProviderManager(config) as manager:
        response = await manager.complete(question, fallbacks=["gpt"])
        again = await manager.complete(question, fallbacks=["gpt"])
    assert (response.model, response.text, response.cached) == ("openai:gpt-5", "echo: hello", False)
    assert response.attempts == 2  # one oversize reply, not retried, then the fallback
    assert (server.calls("anthropic"), server.calls("openai")) == (1, 1)
    assert again.cached  # the fallback's answer is what got cached
    assert again.text == "echo: hello"
    values = _stored_values(config)
    assert values, "the fallback's answer should be cached"
    for value in values:
        assert MARKER.encode() not in value
        assert len(value) < CAP
    cassette = _cassette_text(config)
    assert MARKER not in cassette
    entries = json.loads(cassette)["entries"]
    assert [e["response"]["model"] for e in entries.values()] == ["openai:gpt-5"]


async def test_every_model_over_the_cap_is_the_usual_every_model_failed_error(
    server: FakeLLMServer, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    config = _settings(server, tmp_path, redis_url=redis_url, cache_prefix=redis_prefix)
    server.enqueue(ok(HUGE), ok(HUGE))
    async with ProviderManager(config) as manager:
        with pytest.raises(ProviderError) as caught:
            await manager.complete(CompletionRequest.of("hello", model="fast"), fallbacks=["gpt"])
    message = str(caught.value)
    assert "every model failed" in message
    for model in ("anthropic:claude-haiku-4-5", "openai:gpt-5"):
        assert model in message
    assert "VIBE_MAX_REPLY_BYTES" in message
    assert f"{CAP}" in message
    assert MARKER not in message
    assert not caught.value.retryable
    assert (server.calls("anthropic"), server.calls("openai")) == (1, 1)  # neither was retried
    assert all(MARKER.encode() not in v for v in _stored_values(config))
    assert MARKER not in _cassette_text(config)


async def test_the_error_names_the_model_the_size_and_the_cap(server: FakeLLMServer, tmp_path: Path) -> None:
    config = _settings(server, tmp_path, replay="off", cassette=None)
    server.enqueue(ok(HUGE))
    async with ProviderManager(config) as manager:
        with pytest.raises(ProviderError) as caught:
            await manager.complete(CompletionRequest.of("hello", model="fast"))
    message = str(caught.value)
    assert "anthropic:claude-haiku-4-5" in message
    assert str(len(HUGE.encode())) in message
    assert f"cap of {CAP} bytes (VIBE_MAX_REPLY_BYTES)" in message


@pytest.mark.parametrize("backend", ["redis", "embedded"])
async def test_the_cache_refuses_to_store_or_return_an_entry_over_the_cap(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    prefix: str = request.getfixturevalue("redis_prefix")
    cache: LLMCache
    unbounded: LLMCache
    if backend == "redis":
        url: str = request.getfixturevalue("redis_url")
        cache = RedisCache(url, prefix=prefix, ttl_s=60, max_entry_bytes=CAP)
        unbounded = RedisCache(url, prefix=prefix, ttl_s=60)
    else:
        cache = EmbeddedCache(tmp_path / "c.sqlite3", prefix=prefix, ttl_s=60, max_entry_bytes=CAP)
        unbounded = EmbeddedCache(tmp_path / "c.sqlite3", prefix=prefix, ttl_s=60)
    big = CompletionResponse(text=HUGE, provider="anthropic", model="anthropic:claude-haiku-4-5")
    key = cache_key(prefix, CompletionRequest.of("big", model="fast"), "anthropic:claude-haiku-4-5")
    try:
        await cache.put(key, big)
        assert await unbounded.peek(key) is None  # nothing was written
        assert (await cache.stats()).keys == 0
        await unbounded.put(key, big)  # an entry written by something without the cap...
        assert await cache.get(key) is None  # ...is never handed back
        assert await cache.peek(key) is None
    finally:
        await cache.clear()
        await cache.aclose()
        await unbounded.aclose()
