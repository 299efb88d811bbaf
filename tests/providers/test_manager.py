"""ProviderManager: cache hits and bypass, single-flight (in one process and across processes), failover,
retries and `retry-after`, cooldowns shared across managers, the call-count bound, Redis failing.

Providers are `FakeProvider`s: the `Provider` protocol answered by a Python function (pydantic-ai's
FunctionModel style). The end-to-end tests through the real SDKs are in `test_manager_e2e` below the line.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
import redis

from providers.base import CompletionRequest, CompletionResponse, Usage
from providers.cache import EmbeddedCache, RedisCache
from providers.cooldowns import shared_cooldowns
from providers.manager import ProviderManager
from tests.fakes.llm_server import FakeLLMServer, hang, malformed, prompt_of, status
from vibe.errors import ConfigError, ProviderError
from vibe.settings import Settings

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]

Handler = Callable[[CompletionRequest], "str | Awaitable[str]"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeProvider:
    """A provider whose answers come from `handler(request)` (a string, or raise a ProviderError)."""

    def __init__(self, name: str, handler: Handler | None = None) -> None:
        self.name = name
        self.calls: list[CompletionRequest] = []
        self._handler: Handler = handler or (lambda request: f"{name} says: {request.messages[-1].content}")
        self.closed = False

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        self.calls.append(request)
        text = self._handler(request)
        if inspect.isawaitable(text):
            text = await text
        return CompletionResponse(
            text=text, provider=self.name, model=request.model, usage=Usage(input_tokens=1000, output_tokens=100)
        )

    async def aclose(self) -> None:
        self.closed = True


def failing(provider: str, *errors: ProviderError | None) -> Handler:
    """A handler that raises `errors` in order (None = answer), then answers."""
    queue = list(errors)

    def handle(request: CompletionRequest) -> str:
        error = queue.pop(0) if queue else None
        if error is not None:
            raise error
        return f"{provider} answered"

    return handle


def unavailable(provider: str) -> ProviderError:
    return ProviderError(f"{provider} returned 503", provider=provider, retryable=True, status=503)


def rate_limited(provider: str, retry_after: float) -> ProviderError:
    return ProviderError(f"{provider} returned 429", provider=provider, retryable=True, status=429,
                         retry_after=retry_after)


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "redis_url": None,
        "home": tmp_path / "home",
        "fallbacks": (),
        "llm_retry_base_s": 0.001,
        "llm_max_retries": 2,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def redis_settings(redis_url: str, redis_prefix: str, tmp_path: Path) -> Settings:
    return settings(tmp_path, redis_url=redis_url, cache_prefix=redis_prefix)


class Recorder:
    """An injected `sleep` that records the waits and does not wait."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


# --- cache ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["redis", "embedded"])
async def test_second_identical_request_is_a_cache_hit(backend: str, request: pytest.FixtureRequest,
                                                       tmp_path: Path) -> None:
    config = request.getfixturevalue("redis_settings") if backend == "redis" else settings(tmp_path)
    fake = FakeProvider("anthropic")
    async with ProviderManager(config, providers={"anthropic": fake}) as manager:
        first = await manager.complete(CompletionRequest.of("hello", model="smart"))
        second = await manager.complete(CompletionRequest.of("hello", model="smart"))
        assert manager.cache is not None
        stats = await manager.cache.stats()
    assert len(fake.calls) == 1
    assert fake.calls[0].model == "claude-sonnet-4-6"  # the adapter gets the vendor's model id
    assert (first.cached, first.attempts, first.model) == (False, 1, "anthropic:claude-sonnet-4-6")
    assert first.cost_usd == pytest.approx((1000 * 3.0 + 100 * 15.0) / 1_000_000)
    assert (second.cached, second.attempts, second.cost_usd) == (True, 0, 0.0)
    assert second.text == first.text
    assert second.usage == first.usage
    assert (stats.hits, stats.misses, stats.keys, stats.backend) == (1, 1, 1, backend)


async def test_bypass_neither_reads_nor_writes(redis_settings: Settings) -> None:
    fake = FakeProvider("anthropic")
    async with ProviderManager(redis_settings, providers={"anthropic": fake}) as manager:
        await manager.complete(CompletionRequest.of("hello", model="smart"), use_cache=False)
        assert manager.cache is not None
        assert (await manager.cache.stats()).keys == 0
        await manager.complete(CompletionRequest.of("hello", model="smart"))
        again = await manager.complete(CompletionRequest.of("hello", model="smart"), use_cache=False)
    assert not again.cached
    assert len(fake.calls) == 3


async def test_cache_disabled_still_shares_cooldowns(redis_settings: Settings) -> None:
    config = redis_settings.model_copy(update={"cache_enabled": False, "provider_cooldown_s": 120.0})
    primary = FakeProvider("anthropic", failing("anthropic", *[unavailable("anthropic")] * 10))
    providers = {"anthropic": primary, "openai": FakeProvider("openai")}
    async with ProviderManager(config, providers=providers, sleep=Recorder()) as first:
        for _ in range(2):
            await first.complete(CompletionRequest.of("hello", model="smart"), fallbacks=["gpt"])
        assert first.cache is not None
        assert (await first.cache.stats()).keys == 0
    assert len(primary.calls) == 3  # the second request skipped the cooled-down provider
    assert len(providers["openai"].calls) == 2  # and nothing was cached


async def test_a_different_parameter_is_a_different_entry(redis_settings: Settings) -> None:
    fake = FakeProvider("anthropic")
    async with ProviderManager(redis_settings, providers={"anthropic": fake}) as manager:
        await manager.complete(CompletionRequest.of("hello", model="smart"))
        await manager.complete(CompletionRequest.of("hello", model="smart", temperature=0.5))
        await manager.complete(CompletionRequest.of("hello", model="fast"))
        # An alias and its target are the same request.
        hit = await manager.complete(CompletionRequest.of("hello", model="anthropic:claude-sonnet-4-6"))
    assert len(fake.calls) == 3
    assert hit.cached


async def test_no_api_key_in_cache_keys_or_values(redis_url: str, redis_prefix: str, tmp_path: Path) -> None:
    secret = "sk-ant-api03-VERYSECRETVALUE"
    config = settings(tmp_path, redis_url=redis_url, cache_prefix=redis_prefix, anthropic_api_key=secret)
    async with ProviderManager(config, providers={"anthropic": FakeProvider("anthropic")}) as manager:
        await manager.complete(CompletionRequest.of("hello", model="smart", system="be brief"))
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{redis_prefix}:*"))
    assert keys
    for key in keys:
        assert secret.encode() not in key
        if client.type(key) == b"string":
            assert secret.encode() not in (client.get(key) or b"")
    client.close()


async def test_concurrent_identical_requests_make_one_call(redis_settings: Settings) -> None:
    async def slow(request: CompletionRequest) -> str:
        await asyncio.sleep(0.2)
        return "the one answer"

    fake = FakeProvider("anthropic", slow)
    async with ProviderManager(redis_settings, providers={"anthropic": fake}) as manager:
        answers = await asyncio.gather(
            *(manager.complete(CompletionRequest.of("same", model="smart")) for _ in range(8))
        )
    assert len(fake.calls) == 1
    assert {a.text for a in answers} == {"the one answer"}
    assert sum(not a.cached for a in answers) == 1


# A separate OS process running a manager whose provider counts its calls in Redis (or a file) and is slow.
_WORKER = textwrap.dedent(
    """
    import asyncio, json, os, sys, time
    from pathlib import Path
    import redis
    from providers.base import CompletionRequest, CompletionResponse
    from providers.manager import ProviderManager
    from vibe.settings import Settings

    counter, hang = sys.argv[1], sys.argv[2] == "hang"

    class CountingProvider:
        name = "anthropic"
        async def complete(self, request):
            if counter.startswith("redis"):
                url, key = counter.rsplit("|", 1)
                redis.Redis.from_url(url).incr(key)
            else:
                with open(counter, "a") as fh:
                    fh.write("call\\n")
            if hang:
                await asyncio.sleep(3600)
            await asyncio.sleep(1.0)
            return CompletionResponse(text=f"answer from pid {os.getpid()}", provider="anthropic",
                                      model=request.model)
        async def aclose(self):
            pass

    async def main():
        settings = Settings(fallbacks=(), home=Path(os.environ["VIBE_HOME"]))
        async with ProviderManager(settings, providers={"anthropic": CountingProvider()}) as manager:
            response = await manager.complete(CompletionRequest.of("shared question", model="smart"))
        print(json.dumps({"text": response.text, "cached": response.cached}))

    asyncio.run(main())
    """
)


def _spawn(tmp_path: Path, env: dict[str, str], counter: str, mode: str = "answer") -> subprocess.Popen[str]:
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.Popen([sys.executable, str(script), counter, mode], env=full_env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _backend_env(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> tuple[dict[str, str], str]:
    home = tmp_path / "home"
    if backend == "redis":
        url: str = request.getfixturevalue("redis_url")
        prefix: str = request.getfixturevalue("redis_prefix")
        env = {"REDIS_URL": url, "VIBE_CACHE_PREFIX": prefix, "VIBE_HOME": str(home)}
        return env, f"{url}|{prefix}:test:calls"
    env = {"REDIS_URL": "", "VIBE_HOME": str(home)}
    return env, str(tmp_path / "calls.txt")


def _calls(counter: str) -> int:
    if counter.startswith("redis"):
        url, key = counter.rsplit("|", 1)
        return int(redis.Redis.from_url(url).get(key) or 0)
    path = Path(counter)
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["redis", "embedded"])
def test_single_flight_across_two_processes(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    env, counter = _backend_env(backend, request, tmp_path)
    workers = [_spawn(tmp_path, env, counter) for _ in range(2)]
    outputs = [w.communicate(timeout=120) for w in workers]
    for worker, (_out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
    answers = [out.strip().splitlines()[-1] for out, _ in outputs]
    assert _calls(counter) == 1
    assert len({a.split('"cached"')[0] for a in answers}) == 1  # both print the same text
    assert sorted('"cached": true' in a for a in answers) == [False, True]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["redis", "embedded"])
def test_a_killed_lock_holder_blocks_nobody_past_the_lock_ttl(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    env, counter = _backend_env(backend, request, tmp_path)
    env["VIBE_CACHE_LOCK_TTL_S"] = "2"
    holder = _spawn(tmp_path, env, counter, mode="hang")
    try:
        for _ in range(600):  # the holder is inside the provider call, holding the lock
            if _calls(counter) == 1:
                break
            if holder.poll() is not None:
                pytest.fail(holder.communicate()[1])
            threading.Event().wait(0.05)
        assert _calls(counter) == 1
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # A new process waits at most the lock TTL (2 s), then answers: the pytest timeout catches a hang.
    waiter = _spawn(tmp_path, env, counter)
    out, err = waiter.communicate(timeout=60)
    assert waiter.returncode == 0, err
    assert "answer from pid" in out
    assert _calls(counter) == 2


# --- Redis failing -------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_redis_down_at_start_warns_once_and_answers(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Database 15 keeps this location distinct from the proxy test's, whatever ports the OS hands out.
    config = settings(tmp_path, redis_url=f"redis://127.0.0.1:{_free_port()}/15")
    fake = FakeProvider("anthropic")
    with caplog.at_level(logging.WARNING, logger="vibe.providers"):
        async with ProviderManager(config, providers={"anthropic": fake}) as manager:
            answers = [await manager.complete(CompletionRequest.of(f"q{i}", model="smart")) for i in range(3)]
            again = await manager.complete(CompletionRequest.of("q0", model="smart"))
    assert [a.text for a in answers] == [f"anthropic says: q{i}" for i in range(3)]
    assert not again.cached
    warnings = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(warnings) == 1


async def test_a_killed_redis_connection_is_reopened_without_fuss(
    redis_settings: Settings, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeProvider("anthropic")
    with caplog.at_level(logging.WARNING, logger="vibe.providers"):
        async with ProviderManager(redis_settings, providers={"anthropic": fake}) as manager:
            await manager.complete(CompletionRequest.of("kill", model="smart"))
            assert isinstance(manager.cache, RedisCache)
            own_id = await manager.cache._client.client_id()
            admin = redis.Redis.from_url(redis_url)
            assert admin.client_kill_filter(_id=own_id) == 1  # only our own connection
            admin.close()
            after = await manager.complete(CompletionRequest.of("kill", model="smart"))
    assert after.cached
    assert len(fake.calls) == 1
    assert not [r for r in caplog.records if "unavailable" in r.getMessage()]


async def test_a_hanging_provider_times_out_and_fails_over(tmp_path: Path) -> None:
    async def hangs(request: CompletionRequest) -> str:
        await asyncio.sleep(3600)
        return "never"

    config = settings(tmp_path, llm_timeout_s=0.2, llm_max_retries=1)
    primary = FakeProvider("anthropic", hangs)
    async with ProviderManager(config, providers={"anthropic": primary, "openai": FakeProvider("openai")},
                               sleep=Recorder()) as manager:
        response = await manager.complete(CompletionRequest.of("hi", model="smart"), fallbacks=["gpt"])
    assert (response.model, response.attempts, len(primary.calls)) == ("openai:gpt-5", 3, 2)


class _Proxy:
    """A TCP proxy to Redis that can be stopped mid-run: its connections drop and new ones are refused."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.port = _free_port()
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._sockets: list[socket.socket] = []
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._stopped = True
        # shutdown() wakes the thread blocked in accept(); close() alone leaves the port listening on Linux.
        with suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for s in self._sockets:
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


@pytest.fixture
def redis_proxy(redis_url: str) -> Iterator[_Proxy]:
    kwargs = redis.Redis.from_url(redis_url).connection_pool.connection_kwargs
    proxy = _Proxy(kwargs.get("host", "127.0.0.1"), int(kwargs.get("port", 6379)))
    yield proxy
    proxy.stop()


async def test_redis_failing_mid_run_warns_once_and_answers(
    redis_proxy: _Proxy, redis_prefix: str, redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = redis.Redis.from_url(redis_url).connection_pool.connection_kwargs.get("db", 0)
    config = settings(tmp_path, redis_url=f"redis://127.0.0.1:{redis_proxy.port}/{db}", cache_prefix=redis_prefix)
    fake = FakeProvider("anthropic")
    with caplog.at_level(logging.WARNING, logger="vibe.providers"):
        async with ProviderManager(config, providers={"anthropic": fake}) as manager:
            await manager.complete(CompletionRequest.of("before", model="smart"))
            assert (await manager.complete(CompletionRequest.of("before", model="smart"))).cached
            redis_proxy.stop()
            during = [await manager.complete(CompletionRequest.of(f"during {i}", model="smart")) for i in range(3)]
    assert [a.text for a in during] == [f"anthropic says: during {i}" for i in range(3)]
    assert len(fake.calls) == 4
    assert len([r for r in caplog.records if "unavailable" in r.getMessage()]) == 1


# --- retries, failover, cooldowns ----------------------------------------------------------------------------


async def test_failover_on_5xx_to_the_next_model(tmp_path: Path) -> None:
    primary = FakeProvider("anthropic", failing("anthropic", *[unavailable("anthropic")] * 10))
    backup = FakeProvider("openai")
    sleep = Recorder()
    config = settings(tmp_path, provider_cooldown_s=0)
    async with ProviderManager(config, providers={"anthropic": primary, "openai": backup}, sleep=sleep) as manager:
        response = await manager.complete(CompletionRequest.of("hi", model="smart"), fallbacks=["gpt"])
    assert response.model == "openai:gpt-5"
    assert response.attempts == 3 + 1
    assert len(primary.calls) == 3
    assert len(backup.calls) == 1
    assert len(sleep.waits) == 2  # between the primary's three calls, none before failing over


async def test_retry_after_is_honoured(tmp_path: Path) -> None:
    fake = FakeProvider("anthropic", failing("anthropic", rate_limited("anthropic", 7.5)))
    sleep = Recorder()
    async with ProviderManager(settings(tmp_path), providers={"anthropic": fake}, sleep=sleep) as manager:
        response = await manager.complete(CompletionRequest.of("hi", model="smart"))
    assert response.attempts == 2
    assert sleep.waits == [7.5]  # max(retry_after, backoff) with a backoff of ~1 ms


async def test_retry_after_longer_than_allowed_fails_over_at_once(tmp_path: Path) -> None:
    primary = FakeProvider("anthropic", failing("anthropic", rate_limited("anthropic", 600)))
    backup = FakeProvider("openai")
    sleep = Recorder()
    config = settings(tmp_path, llm_max_retry_wait_s=30)
    async with ProviderManager(config, providers={"anthropic": primary, "openai": backup}, sleep=sleep) as manager:
        response = await manager.complete(CompletionRequest.of("hi", model="smart"), fallbacks=["gpt"])
        shared = shared_cooldowns(manager.cache)
        assert shared is not None
        cooling = await shared.cooling("anthropic")
    assert response.model == "openai:gpt-5"
    assert (len(primary.calls), sleep.waits) == (1, [])
    assert cooling is not None
    assert cooling > 60  # cooled down for as long as the provider asked, beyond provider_cooldown_s


async def test_call_count_bound_and_the_error_lists_every_model(tmp_path: Path) -> None:
    fakes = {name: FakeProvider(name, failing(name, *[unavailable(name)] * 100)) for name in ("anthropic", "openai",
                                                                                              "gemini")}
    config = settings(tmp_path, llm_max_retries=3, provider_cooldown_s=0)
    async with ProviderManager(config, providers=fakes, sleep=Recorder()) as manager:
        with pytest.raises(ProviderError) as caught:
            await manager.complete(CompletionRequest.of("hi", model="smart"), fallbacks=["gpt", "gemini-pro", "smart"])
    # (1 + llm_max_retries) x (models in the chain); the duplicate of the primary is not tried twice.
    assert sum(len(f.calls) for f in fakes.values()) == (1 + 3) * 3
    message = str(caught.value)
    for model in ("anthropic:claude-sonnet-4-6", "openai:gpt-5", "gemini:gemini-2.5-pro"):
        assert model in message
    assert caught.value.retryable
    assert caught.value.status == 503


async def test_a_bad_request_is_neither_retried_nor_failed_over(tmp_path: Path) -> None:
    bad = ProviderError("anthropic returned 400: max_tokens too large", provider="anthropic", retryable=False,
                        status=400)
    primary = FakeProvider("anthropic", failing("anthropic", bad))
    backup = FakeProvider("openai")
    async with ProviderManager(settings(tmp_path), providers={"anthropic": primary, "openai": backup}) as manager:
        with pytest.raises(ProviderError) as caught:
            await manager.complete(CompletionRequest.of("hi", model="smart"), fallbacks=["gpt"])
    assert (len(primary.calls), len(backup.calls)) == (1, 0)
    assert caught.value.status == 400
    assert not caught.value.retryable


async def test_an_auth_failure_fails_over_without_retrying(tmp_path: Path) -> None:
    denied = ProviderError("anthropic returned 401: invalid x-api-key", provider="anthropic", retryable=False,
                           status=401)
    primary = FakeProvider("anthropic", failing("anthropic", denied, denied))
    backup = FakeProvider("openai", failing("openai", ProviderError("openai returned 401", provider="openai",
                                                                    retryable=False, status=401)))
    async with ProviderManager(settings(tmp_path), providers={"anthropic": primary, "openai": backup}) as manager:
        with pytest.raises(ProviderError) as caught:
            await manager.complete(CompletionRequest.of("hi", model="smart"), fallbacks=["gpt"])
        answered = await manager.complete(CompletionRequest.of("hi", model="smart"), fallbacks=["gpt"])
    assert "anthropic:claude-sonnet-4-6" in str(caught.value)
    assert "openai:gpt-5" in str(caught.value)
    assert answered.model == "openai:gpt-5"
    assert answered.attempts == 2
    assert (len(primary.calls), len(backup.calls)) == (2, 2)


async def test_unknown_model_is_a_config_error_before_any_call(tmp_path: Path) -> None:
    fake = FakeProvider("anthropic")
    async with ProviderManager(settings(tmp_path), providers={"anthropic": fake}) as manager:
        with pytest.raises(ConfigError, match="known providers"):
            await manager.complete(CompletionRequest.of("hi", model="smart"), fallbacks=["nope:model"])
        with pytest.raises(ConfigError, match="alias"):
            await manager.complete(CompletionRequest.of("hi", model="clever"))
    assert fake.calls == []


async def test_cooldown_is_shared_by_two_managers(redis_settings: Settings) -> None:
    config = redis_settings.model_copy(update={"provider_cooldown_s": 120.0})
    first_primary = FakeProvider("anthropic", failing("anthropic", *[unavailable("anthropic")] * 10))
    async with ProviderManager(config, providers={"anthropic": first_primary, "openai": FakeProvider("openai")},
                               sleep=Recorder()) as first:
        await first.complete(CompletionRequest.of("one", model="smart"), fallbacks=["gpt"])
    second_primary = FakeProvider("anthropic")
    async with ProviderManager(config, providers={"anthropic": second_primary, "openai": FakeProvider("openai")},
                               sleep=Recorder()) as second:
        skipped = await second.complete(CompletionRequest.of("two", model="smart"), fallbacks=["gpt"])
        # The cooled-down provider is the last option here: it is tried anyway.
        last_option = await second.complete(CompletionRequest.of("three", model="smart"), fallbacks=[])
    assert skipped.model == "openai:gpt-5"
    assert skipped.attempts == 1
    assert last_option.model == "anthropic:claude-sonnet-4-6"
    assert len(second_primary.calls) == 1


async def test_cooldown_shared_through_the_embedded_store(tmp_path: Path) -> None:
    config = settings(tmp_path, provider_cooldown_s=120.0)
    failing_primary = FakeProvider("anthropic", failing("anthropic", *[unavailable("anthropic")] * 10))
    async with ProviderManager(config, providers={"anthropic": failing_primary, "openai": FakeProvider("openai")},
                               sleep=Recorder()) as first:
        await first.complete(CompletionRequest.of("one", model="smart"), fallbacks=["gpt"])
    fresh = FakeProvider("anthropic")
    async with ProviderManager(config, providers={"anthropic": fresh, "openai": FakeProvider("openai")}) as second:
        answer = await second.complete(CompletionRequest.of("two", model="smart"), fallbacks=["gpt"])
    assert answer.model == "openai:gpt-5"
    assert fresh.calls == []


async def test_fallbacks_come_from_settings_then_the_registry(tmp_path: Path) -> None:
    config = settings(tmp_path, fallbacks=("gpt", "smart"))
    async with ProviderManager(config, providers={}) as manager:
        assert [s.id for s in manager.chain("smart")] == ["anthropic:claude-sonnet-4-6", "openai:gpt-5"]
        assert [s.id for s in manager.chain("smart", ["grok"])] == ["anthropic:claude-sonnet-4-6", "xai:grok-4"]
    async with ProviderManager(settings(tmp_path, fallbacks=None), providers={}) as manager:
        assert [s.id for s in manager.chain("fast")] == [
            "anthropic:claude-haiku-4-5",
            "anthropic:claude-sonnet-4-6",
            "openai:gpt-5",
            "gemini:gemini-2.5-pro",
            "xai:grok-4",
        ]


async def test_per_provider_concurrency_and_the_limiter_seam(tmp_path: Path) -> None:
    running = 0
    peak = 0
    limited: list[str] = []

    async def slow(request: CompletionRequest) -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        return "ok"

    @asynccontextmanager
    async def limiter(provider: str) -> AsyncIterator[None]:
        limited.append(provider)
        yield

    config = settings(tmp_path, llm_concurrency=2)
    async with ProviderManager(config, providers={"anthropic": FakeProvider("anthropic", slow)},
                               limiter=limiter) as manager:
        await asyncio.gather(*(manager.complete(CompletionRequest.of(f"q{i}", model="smart")) for i in range(6)))
    assert peak == 2
    assert limited == ["anthropic"] * 6


async def test_aclose_leaves_injected_providers_and_caches_open(tmp_path: Path) -> None:
    fake = FakeProvider("anthropic")
    cache = EmbeddedCache(tmp_path / "c.sqlite3", prefix="p", ttl_s=60)
    async with ProviderManager(settings(tmp_path), providers={"anthropic": fake}, cache=cache) as manager:
        await manager.complete(CompletionRequest.of("hi", model="smart"))
    assert not fake.closed
    assert (await cache.stats()).keys == 1
    await cache.aclose()


# --- end to end through the real SDKs against the fake LLM server ---------------------------------------------
# (`fast`, not `smart`: the Anthropic SDK warns that claude-sonnet-4-6 is deprecated, and warnings are errors.)


@pytest.fixture
def llm_server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(responder=lambda body: f"echo: {prompt_of(body)}") as server:
        yield server


def sdk_settings(tmp_path: Path, server: FakeLLMServer, **overrides: Any) -> Settings:
    return settings(
        tmp_path,
        replay="off",
        anthropic_api_key="sk-ant-test-KEY-123456",
        openai_api_key="sk-openai-test-KEY-123456",
        anthropic_base_url=server.anthropic_base_url,
        openai_base_url=server.openai_base_url,
        **overrides,
    )


async def test_sdk_429_with_retry_after_then_success(llm_server: FakeLLMServer, tmp_path: Path) -> None:
    llm_server.enqueue(status(429, retry_after=2))
    sleep = Recorder()
    async with ProviderManager(sdk_settings(tmp_path, llm_server), sleep=sleep) as manager:
        response = await manager.complete(CompletionRequest.of("hello", model="fast"))
        hit = await manager.complete(CompletionRequest.of("hello", model="fast"))
    assert response.text == "echo: hello"
    assert response.attempts == 2
    assert sleep.waits == [2.0]
    assert response.model == "anthropic:claude-haiku-4-5"
    assert response.cost_usd is not None
    assert hit.cached
    assert llm_server.calls("anthropic") == 2
    assert llm_server.requests[-1].body["model"] == "claude-haiku-4-5"


async def test_sdk_primary_500s_then_the_fallback_answers(llm_server: FakeLLMServer, tmp_path: Path) -> None:
    llm_server.enqueue(*[status(500)] * 3)
    config = sdk_settings(tmp_path, llm_server, llm_max_retries=2)
    async with ProviderManager(config, sleep=Recorder()) as manager:
        response = await manager.complete(CompletionRequest.of("hello", model="fast"), fallbacks=["gpt"])
    assert (response.model, response.provider, response.text) == ("openai:gpt-5", "openai", "echo: hello")
    assert response.attempts == 4
    assert (llm_server.calls("anthropic"), llm_server.calls("openai")) == (3, 1)


async def test_sdk_bad_request_makes_exactly_one_call(llm_server: FakeLLMServer, tmp_path: Path) -> None:
    llm_server.enqueue(status(400, message="max_tokens: too large"))
    async with ProviderManager(sdk_settings(tmp_path, llm_server), sleep=Recorder()) as manager:
        with pytest.raises(ProviderError) as caught:
            await manager.complete(CompletionRequest.of("hello", model="fast"), fallbacks=["gpt"])
    assert caught.value.status == 400
    assert llm_server.calls() == 1
    assert "sk-ant-test-KEY-123456" not in str(caught.value)


async def test_sdk_malformed_replies_are_retried_then_fail_over(llm_server: FakeLLMServer, tmp_path: Path) -> None:
    llm_server.enqueue(malformed(), malformed())
    config = sdk_settings(tmp_path, llm_server, llm_max_retries=1)
    async with ProviderManager(config, sleep=Recorder()) as manager:
        response = await manager.complete(CompletionRequest.of("hello", model="fast"), fallbacks=["gpt"])
    assert response.model == "openai:gpt-5"
    assert response.attempts == 3


async def test_sdk_timeout_is_retried(llm_server: FakeLLMServer, tmp_path: Path) -> None:
    llm_server.enqueue(hang(30))
    config = sdk_settings(tmp_path, llm_server, llm_timeout_s=0.5, llm_max_retries=1)
    async with ProviderManager(config, sleep=Recorder()) as manager:
        response = await manager.complete(CompletionRequest.of("slow", model="fast"))
    assert (response.text, response.attempts) == ("echo: slow", 2)
