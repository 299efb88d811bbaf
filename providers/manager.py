"""The provider manager: one `complete()` that resolves, caches, retries, fails over and limits.

This is the only layer that retries LLM calls: the SDKs are built with `max_retries=0` and Prefect task retries
never wrap an LLM call. One `complete()` therefore causes at most `(1 + llm_max_retries) x len(chain)` provider
calls, where `chain` is the requested model plus its distinct fallbacks (a cache hit causes none).

Per model of the chain:

- a retryable `ProviderError` (429, 5xx, timeouts, malformed replies) is retried up to `llm_max_retries` times
  with exponential backoff and jitter; a `retry_after` is honoured (the wait is `max(retry_after, backoff)`),
  and one longer than `llm_max_retry_wait_s` fails over at once instead of waiting;
- a provider that exhausts its retries is cooled down for `provider_cooldown_s` (shared through the cache's
  store, so every process skips it), and the chain moves on; a cooled-down provider is skipped unless it is the
  last option left, which is tried anyway;
- a 401/403/404 or a missing key is that provider's configuration problem: no retry, fail over;
- any other non-retryable error (400, 413, 422: the caller's request) is raised at once: no retry, no failover.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING

from providers.base import CompletionRequest, CompletionResponse, Provider
from providers.cache import LLMCache, open_cache, warn_unavailable
from providers.canonical import cache_key
from providers.registry import ModelRegistry, ModelSpec
from providers.reply_cap import check_reply_size
from vibe.errors import CacheError, ConfigError, ProviderError
from vibe.settings import Settings

if TYPE_CHECKING:
    import httpx2

log = logging.getLogger("vibe.providers.manager")

Limiter = Callable[[str], AbstractAsyncContextManager[object]]
Sleep = Callable[[float], Awaitable[None]]

# Statuses that mean "this provider or model is misconfigured", not "the request is wrong": fail over.
_CONFIG_STATUSES = frozenset({401, 403, 404})
# The SDK's own timeout (llm_timeout_s) should fire first; this guard catches a provider that ignores it.
_TIMEOUT_MARGIN_S = 5.0
_LOCK_MARGIN_S = 10.0


@dataclass
class _Flight:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class ProviderManager:
    """Routes completion requests to providers, with the LLM cache, retries, failover, cooldowns and limits.

    Args:
        settings: the invocation's settings.
        registry: the model registry (default: `ModelRegistry.load()`).
        cache: the LLM cache and cooldown store (default: `open_cache(settings)`, closed by `aclose()`).
        providers: ready providers by provider name (`anthropic`, `openai`, ...), used instead of building them;
            the caller keeps ownership of these.
        http_client: an `httpx2.AsyncClient` handed to the providers this manager builds.
        limiter: a factory of async context managers, called with the provider name around every provider
            call: the seam for cross-process limits (Prefect global concurrency limits).
        sleep: how to wait between retries (default `asyncio.sleep`); tests pass one that records the waits.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        registry: ModelRegistry | None = None,
        cache: LLMCache | None = None,
        providers: Mapping[str, Provider] | None = None,
        http_client: httpx2.AsyncClient | None = None,
        limiter: Limiter | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self._settings = settings
        self._registry = registry or ModelRegistry.load()
        self._owns_cache = cache is None
        self._cache: LLMCache | None = cache
        if cache is None:
            try:
                self._cache = open_cache(settings)
            except CacheError as exc:
                warn_unavailable(str(settings.home), exc)
        self._injected: dict[str, Provider] = dict(providers or {})
        self._built: dict[str, Provider] = {}
        self._http_client = http_client
        self._limiter = limiter
        self._sleep: Sleep = sleep or asyncio.sleep
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._flights: dict[str, _Flight] = {}
        # Cooldowns this process decided, used when the shared store is unreachable.
        self._local_cooldowns: dict[str, float] = {}
        self._lock_ttl_s = settings.cache_lock_ttl_s or settings.llm_timeout_s + _LOCK_MARGIN_S
        self._call_timeout_s = settings.llm_timeout_s + min(_TIMEOUT_MARGIN_S, settings.llm_timeout_s)

    @classmethod
    def from_settings(cls, settings: Settings) -> ProviderManager:
        """A manager with the default registry and the cache the settings configure."""
        return cls(settings)

    @property
    def cache(self) -> LLMCache | None:
        """The cache and cooldown store in use (None when it could not be opened)."""
        return self._cache

    async def __aenter__(self) -> ProviderManager:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the providers this manager built and the cache it opened."""
        built, self._built = self._built, {}
        for provider in built.values():
            await provider.aclose()
        if self._owns_cache and self._cache is not None:
            await self._cache.aclose()
            self._cache = None

    def chain(self, model: str, fallbacks: Sequence[str] | None = None) -> tuple[ModelSpec, ...]:
        """The models `complete()` would try, in order: `model`, then the distinct fallbacks.

        Fallbacks are `fallbacks` when given, else `settings.fallbacks`, else the registry's default chain.

        Raises:
            ConfigError: a name in the chain is unknown (the message lists what is known).
        """
        primary = self._registry.resolve(model)
        names = fallbacks if fallbacks is not None else self._settings.fallbacks
        if names is None:
            names = self._registry.default_fallbacks
        specs = [primary]
        for name in names:
            spec = self._registry.resolve(name)
            if all(spec.id != seen.id for seen in specs):
                specs.append(spec)
        return tuple(specs)

    async def complete(
        self,
        request: CompletionRequest,
        *,
        fallbacks: Sequence[str] | None = None,
        use_cache: bool = True,
    ) -> CompletionResponse:
        """Answer `request` from the cache or the first model of the chain that succeeds.

        Args:
            request: the request; its `model` is an alias, a role or `provider:model`.
            fallbacks: models to try after the requested one (see `chain`).
            use_cache: False bypasses the cache completely for this call: no read, no write, no single-flight.

        Returns:
            The response with `model` set to the resolved `provider:model` that answered, `cost_usd` from the
            registry's prices, and `attempts` = provider calls made for this request across the chain. A cache
            hit has `cached=True`, `attempts=0` and `cost_usd=0.0` (it cost nothing; `usage` is the original's).
            A fallback's answer is cached under the request's key like the primary's would be.

        Raises:
            ConfigError: an unknown model (before any call); no model of the chain could be called because
                of configuration (missing keys), the message naming each model and why; or a provider raised
                one (a replay cassette miss), which is not retried.
            ProviderError: every model failed, or the request itself was rejected (400); the message lists
                each model tried and why.
        """
        specs = self.chain(request.model, fallbacks)
        cache = self._cache if use_cache and self._settings.cache_enabled else None
        if cache is None:
            return await self._call_chain(request, specs)
        key = cache_key(cache.prefix, request, specs[0].id)
        try:
            hit = await cache.get(key)
        except CacheError as exc:
            warn_unavailable(cache.location, exc)
            return await self._call_chain(request, specs)
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
            response = await self._call_chain(request, specs)
            if not degraded:
                await self._store(cache, key, response)
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

    async def _store(self, cache: LLMCache, key: str, response: CompletionResponse) -> None:
        # Stored in the shape of a hit, so the hit path is a single parse with no copy.
        as_hit = response.model_copy(
            update={"cached": True, "attempts": 0, "cost_usd": None if response.cost_usd is None else 0.0}
        )
        try:
            await cache.put(key, as_hit)
        except CacheError as exc:
            warn_unavailable(cache.location, exc)

    async def _call_chain(self, request: CompletionRequest, specs: tuple[ModelSpec, ...]) -> CompletionResponse:
        max_retries = self._settings.llm_max_retries
        reasons: list[str] = []
        last_error: ProviderError | None = None
        calls = 0
        for index, spec in enumerate(specs):
            cooling = await self._cooldown_left(spec.provider)
            if cooling > 0:
                if index < len(specs) - 1:
                    reasons.append(f"{spec.id}: skipped, {spec.provider} is cooling down ({cooling:.0f}s left)")
                    continue
                log.warning(
                    "%s is cooling down (%.0fs left) but is the last option: trying it anyway", spec.id, cooling
                )
            try:
                provider = self._provider(spec)
            except ConfigError as exc:
                reasons.append(str(exc) if spec.id in str(exc) else f"{spec.id}: {exc}")
                continue
            vendor_request = request.model_copy(update={"model": spec.model})
            for attempt in range(max_retries + 1):
                calls += 1
                try:
                    response = await self._call_once(provider, spec, vendor_request)
                except ProviderError as exc:
                    last_error = exc
                    if not exc.retryable:
                        if exc.status is not None and exc.status not in _CONFIG_STATUSES:
                            # The request itself is wrong: no other model will accept it either.
                            raise ProviderError(
                                f"{spec.id} rejected the request: {exc}",
                                provider=exc.provider,
                                retryable=False,
                                status=exc.status,
                            ) from exc
                        reasons.append(f"{spec.id}: {exc}")
                        break
                    if attempt == max_retries:
                        reasons.append(f"{spec.id}: {exc} (after {attempt + 1} calls)")
                        await self._cool_down(spec.provider, self._settings.provider_cooldown_s)
                        break
                    wait = self._backoff(attempt)
                    if exc.retry_after is not None:
                        if exc.retry_after > self._settings.llm_max_retry_wait_s:
                            reasons.append(
                                f"{spec.id}: {exc} (asked to wait {exc.retry_after:.0f}s, more than "
                                f"llm_max_retry_wait_s={self._settings.llm_max_retry_wait_s:.0f}s)"
                            )
                            cooldown = max(self._settings.provider_cooldown_s, exc.retry_after)
                            await self._cool_down(spec.provider, cooldown)
                            break
                        wait = max(wait, exc.retry_after)
                    log.info("%s failed (%s); retry %d/%d in %.2fs", spec.id, exc, attempt + 1, max_retries, wait)
                    await self._sleep(wait)
                    continue
                return self._finish(response, spec, calls)
        summary = "; ".join(reasons)
        if last_error is None:
            raise ConfigError(f"no model could be called: {summary}")
        raise ProviderError(
            f"every model failed after {calls} provider calls: {summary}",
            provider=last_error.provider,
            retryable=last_error.retryable,
            status=last_error.status,
            retry_after=last_error.retry_after,
        ) from last_error

    async def _call_once(self, provider: Provider, spec: ModelSpec, request: CompletionRequest) -> CompletionResponse:
        semaphore = self._semaphores.get(spec.provider)
        if semaphore is None:
            semaphore = self._semaphores[spec.provider] = asyncio.Semaphore(self._settings.llm_concurrency)
        limit = self._limiter(spec.provider) if self._limiter is not None else nullcontext()
        async with semaphore, limit:
            try:
                async with asyncio.timeout(self._call_timeout_s):
                    response = await provider.complete(request)
            except TimeoutError as exc:
                raise ProviderError(
                    f"{spec.id} did not answer within {self._call_timeout_s:.0f}s",
                    provider=spec.provider,
                    retryable=True,
                ) from exc
        # Before the cache, the journal or the caller sees it: an oversize reply fails over like a fault.
        check_reply_size(response, model_id=spec.id, max_bytes=self._settings.max_reply_bytes)
        return response

    def _finish(self, response: CompletionResponse, spec: ModelSpec, calls: int) -> CompletionResponse:
        cost = spec.cost_usd(response.usage.input_tokens, response.usage.output_tokens)
        return response.model_copy(
            update={
                "model": spec.id,
                "cost_usd": cost if cost is not None else response.cost_usd,
                "cached": False,
                "attempts": calls,
            }
        )

    def _backoff(self, attempt: int) -> float:
        # Exponential with jitter in [d/2, d]: spreads retries of many workers without ever waiting ~0.
        ceiling: float = min(self._settings.llm_retry_base_s * 2.0**attempt, self._settings.llm_max_retry_wait_s)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _provider(self, spec: ModelSpec) -> Provider:
        provider = self._injected.get(spec.provider) or self._built.get(spec.provider)
        if provider is None:
            from providers.factory import build_provider

            provider = build_provider(spec, self._settings, http_client=self._http_client)
            self._built[spec.provider] = provider
        return provider

    async def _cooldown_left(self, provider: str) -> float:
        local = max(0.0, self._local_cooldowns.get(provider, 0.0) - time.monotonic())
        if self._cache is None:
            return local
        try:
            shared = await self._cache.cooldown_left(provider)
        except CacheError as exc:
            warn_unavailable(self._cache.location, exc)
            return local
        return max(local, shared)

    async def _cool_down(self, provider: str, seconds: float) -> None:
        if seconds <= 0:
            return
        log.warning("%s failed past its retries: cooling it down for %.0fs", provider, seconds)
        self._local_cooldowns[provider] = time.monotonic() + seconds
        if self._cache is None:
            return
        try:
            await self._cache.cool_down(provider, seconds)
        except CacheError as exc:
            warn_unavailable(self._cache.location, exc)
