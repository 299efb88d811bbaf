"""`build_stack`: the one place the provider layers are composed, once per entry point.

```
CachedModel(FallbackModel(RetryModel(ProviderModel(ProviderPool -> LimitedProvider(adapter))))))
```

The cache and the cooldown store are opened here from the settings (or injected); the adapters are built on
first use. `ProviderStack.aclose()` closes what the stack opened or built, never what was injected.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from providers.base import Provider
from providers.cache import LLMCache, open_cache, warn_unavailable
from providers.cooldowns import FailSafeCooldowns, cooldowns_for
from providers.layers import (
    CachedModel,
    FallbackModel,
    Limiter,
    Limits,
    Model,
    ProviderModel,
    ProviderPool,
    RetryModel,
    RetryPolicy,
    Router,
    Sleep,
)
from providers.registry import ModelRegistry
from vibe.errors import CacheError
from vibe.settings import Settings

if TYPE_CHECKING:
    import httpx2

_LOCK_MARGIN_S = 10.0


@dataclass
class ProviderStack:
    """The composed layers and what they hold open.

    Attributes:
        model: the top layer; `await stack.model.complete(request, CallOptions(...))`.
        router: resolves names and chains.
        cache: the LLM cache (None when it could not be opened).
        cooldowns: the cooldown store shared by the retry and fallback layers.
    """

    model: Model
    router: Router
    cache: LLMCache | None
    cooldowns: FailSafeCooldowns
    _pool: ProviderPool
    _owns_cache: bool

    async def aclose(self) -> None:
        """Close the providers the stack built and the cache it opened."""
        await self._pool.aclose()
        if self._owns_cache and self.cache is not None:
            await self.cache.aclose()
            self.cache = None


def _open_cache(settings: Settings) -> LLMCache | None:
    try:
        return open_cache(settings)
    except CacheError as exc:
        warn_unavailable(str(settings.home), exc)
        return None


def build_stack(
    settings: Settings,
    *,
    registry: ModelRegistry | None = None,
    cache: LLMCache | None = None,
    providers: Mapping[str, Provider] | None = None,
    http_client: httpx2.AsyncClient | None = None,
    limiter: Limiter | None = None,
    sleep: Sleep | None = None,
) -> ProviderStack:
    """Compose the provider layers for `settings`.

    Args:
        settings: the invocation's settings (chain, retries, limits, cache, keys).
        registry: the model registry (default: `ModelRegistry.load()`, read once per process).
        cache: the LLM cache (default: `open_cache(settings)`, closed by `aclose()`); its backend also keeps the
            cooldowns.
        providers: ready providers by provider name, used instead of building them (the caller closes them).
        http_client: an `httpx2.AsyncClient` handed to the providers the stack builds.
        limiter: the cross-process limit around every provider call (Prefect global concurrency limits).
        sleep: how to wait between retries (default `asyncio.sleep`).
    """
    registry = registry or ModelRegistry.load()
    owns_cache = cache is None
    opened = _open_cache(settings) if cache is None else cache
    cooldowns = cooldowns_for(opened)
    router = Router(registry, settings.fallbacks)
    limits = Limits(settings.llm_concurrency, limiter, settings.llm_timeout_s)
    pool = ProviderPool(settings, limits, providers=providers, http_client=http_client)
    policy = RetryPolicy(
        max_retries=settings.llm_max_retries,
        base_s=settings.llm_retry_base_s,
        max_wait_s=settings.llm_max_retry_wait_s,
        cooldown_s=settings.provider_cooldown_s,
    )
    calls = ProviderModel(pool, registry, max_reply_bytes=settings.max_reply_bytes)
    retry = RetryModel(calls, cooldowns, policy, sleep=sleep or asyncio.sleep)
    fallback = FallbackModel(retry, router, cooldowns)
    lock_ttl_s = settings.cache_lock_ttl_s or settings.llm_timeout_s + _LOCK_MARGIN_S
    top = CachedModel(fallback, opened if settings.cache_enabled else None, router, lock_ttl_s=lock_ttl_s)
    return ProviderStack(top, router, opened, cooldowns, pool, owns_cache)
