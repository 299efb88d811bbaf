"""`ProviderManager`: the provider stack (`stack.py`) behind the one call the rest of the project makes.

    async with ProviderManager(settings) as manager:
        response = await manager.complete(request, fallbacks=["gpt"], use_cache=True)

The work is done by the layers (`providers/layers/`), composed once by `build_stack`: the cache layer (with
single-flight), the fallback layer (chain order, cooldown skips, "every model failed" as an exception group),
the retry layer (the only place LLM calls are retried; it writes the cooldowns), and the limits layer
(semaphores, the cross-process limiter, the time limit) around each adapter. One `complete()` therefore causes
at most `(1 + llm_max_retries) x len(chain)` provider calls, where `chain` is the requested model plus its
distinct fallbacks (a cache hit causes none).

Build one manager at the entry point and pass it down. `shared_manager(settings)` is the convenience for
callers that only have `Settings`: one manager per settings value and event loop, reused by later calls.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from providers.base import CompletionRequest, CompletionResponse, Provider
from providers.cache import LLMCache
from providers.cooldowns import CooldownStore
from providers.layers import CallOptions, Limiter, Sleep
from providers.registry import ModelRegistry, ModelSpec
from providers.stack import build_stack
from vibe.settings import Settings

if TYPE_CHECKING:
    import httpx2

__all__ = ["Limiter", "ProviderManager", "Sleep", "shared_manager"]


class ProviderManager:
    """Routes completion requests through the provider stack: cache, fallback, retries and cooldowns, limits.

    Args:
        settings: the invocation's settings.
        registry: the model registry (default: `ModelRegistry.load()`, read once per process).
        cache: the LLM cache (default: `open_cache(settings)`, closed by `aclose()`); cooldowns live beside it.
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
        self._stack = build_stack(
            settings,
            registry=registry,
            cache=cache,
            providers=providers,
            http_client=http_client,
            limiter=limiter,
            sleep=sleep,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> ProviderManager:
        """A manager with the default registry and the cache the settings configure."""
        return cls(settings)

    @property
    def cache(self) -> LLMCache | None:
        """The LLM cache in use (None when it could not be opened)."""
        return self._stack.cache

    @property
    def cooldowns(self) -> CooldownStore:
        """The cooldown store (shared through the cache's backend when there is one)."""
        return self._stack.cooldowns

    async def __aenter__(self) -> ProviderManager:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the providers this manager built and the cache it opened."""
        await self._stack.aclose()

    def chain(self, model: str, fallbacks: Sequence[str] | None = None) -> tuple[ModelSpec, ...]:
        """The models `complete()` would try, in order: `model`, then the distinct fallbacks.

        Fallbacks are `fallbacks` when given, else `settings.fallbacks`, else the registry's default chain.

        Raises:
            ConfigError: a name in the chain is unknown (the message lists what is known).
        """
        return self._stack.router.chain(model, fallbacks)

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
            ConfigError: an unknown model (before any call or cache lookup); no model of the chain could be
                called because of configuration (missing keys), the message naming each model and why; or a
                provider raised one (a replay cassette miss), which is not retried.
            ProviderError: the request itself was rejected (400).
            AllModelsFailedError: (a `ProviderError` and an `ExceptionGroup`) every model failed; the message
                lists each model tried and why, `exceptions` holds each model's error.
        """
        self.chain(request.model, fallbacks)  # unknown names fail first, even when the answer is cached
        options = CallOptions(fallbacks=None if fallbacks is None else tuple(fallbacks), use_cache=use_cache)
        return await self._stack.model.complete(request, options)


# Managers built for callers that only have Settings: per event loop (asyncio objects and Redis connections
# belong to one loop), then per settings value and limiter.
_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Settings, Limiter | None], ProviderManager]]
_SHARED = weakref.WeakKeyDictionary()
# Keeps the closer of each loop's managers alive until the loop shuts its async generators down.
_CLOSERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncIterator[None]] = weakref.WeakKeyDictionary()


async def shared_manager(settings: Settings, *, limiter: Limiter | None = None) -> ProviderManager:
    """The manager for `settings` (and `limiter`) in the running event loop, built by the first call.

    Later calls with the same settings reuse its stack: its cache connection, its built adapters, its
    single-flight table and cooldowns. Its managers are closed when the loop shuts down (`asyncio.run` does
    that on return); do not close them yourself.
    """
    loop = asyncio.get_running_loop()
    managers = _SHARED.get(loop)
    if managers is None:
        managers = _SHARED[loop] = {}
        closer = _close_at_shutdown(managers)
        await anext(closer)  # now a live async generator of this loop: shutdown_asyncgens() finishes it
        _CLOSERS[loop] = closer
    key = (settings, limiter)
    manager = managers.get(key)
    if manager is None:
        manager = managers[key] = ProviderManager(settings, limiter=limiter)
    return manager


async def _close_at_shutdown(managers: dict[tuple[Settings, Limiter | None], ProviderManager]) -> AsyncIterator[None]:
    try:
        yield
    finally:
        built = list(managers.values())
        managers.clear()
        for manager in built:
            await manager.aclose()
