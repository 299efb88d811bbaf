"""The bottom layer: one call of one model's provider, priced, with the reply size cap applied.

`ProviderModel` gets a request whose `model` is a resolved `provider:model`, sends it to that provider's adapter
with the vendor's own model id, and returns the answer with `model` = `provider:model`, `cost_usd` from the
registry's prices and `attempts=1`. Adapters come from a `ProviderPool`: injected ones (owned by the caller) or
built on first use by `build_provider` (closed with the pool), each wrapped in the limits layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from providers.base import CompletionRequest, CompletionResponse, Provider
from providers.layers.base import DEFAULT_OPTIONS, CallOptions
from providers.layers.limits import LimitedProvider, Limits
from providers.registry import ModelRegistry, ModelSpec
from providers.reply_cap import check_reply_size
from vibe.errors import ConfigError
from vibe.settings import Settings

if TYPE_CHECKING:
    import httpx2


class NotConfiguredError(ConfigError):
    """A model's provider cannot be built (a missing key): the fallback layer skips that model."""


class ProviderPool:
    """The adapters of one stack, by provider name, each behind the limits layer.

    Args:
        settings: keys, base URLs, timeouts and the replay mode for the adapters it builds.
        limits: the limits every provider call goes through.
        providers: ready providers by name, used instead of building them (the caller closes them).
        http_client: an `httpx2.AsyncClient` handed to the adapters it builds.
    """

    def __init__(
        self,
        settings: Settings,
        limits: Limits,
        *,
        providers: Mapping[str, Provider] | None = None,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        self._settings = settings
        self._limits = limits
        self._http_client = http_client
        self._ready: dict[str, Provider] = {name: LimitedProvider(p, limits) for name, p in (providers or {}).items()}
        self._built: dict[str, Provider] = {}

    def get(self, spec: ModelSpec) -> Provider:
        """The (limited) provider of `spec`, built on first use.

        Raises:
            NotConfiguredError: it cannot be built (the message names the model and what to set).
        """
        provider = self._ready.get(spec.provider)
        if provider is not None:
            return provider
        from providers.factory import build_provider

        try:
            built = build_provider(spec, self._settings, http_client=self._http_client)
        except ConfigError as exc:
            message = str(exc) if spec.id in str(exc) else f"{spec.id}: {exc}"
            raise NotConfiguredError(message) from exc
        self._built[spec.provider] = built
        provider = self._ready[spec.provider] = LimitedProvider(built, self._limits)
        return provider

    async def aclose(self) -> None:
        """Close the providers this pool built (never the injected ones)."""
        built, self._built = self._built, {}
        for name, provider in built.items():
            self._ready.pop(name, None)
            await provider.aclose()


class ProviderModel:
    """The bottom layer (see the module docstring).

    Args:
        pool: where the providers come from.
        registry: resolves `provider:model` to its spec (prices).
        max_reply_bytes: replies over it are refused (`VIBE_MAX_REPLY_BYTES`).
    """

    def __init__(self, pool: ProviderPool, registry: ModelRegistry, *, max_reply_bytes: int) -> None:
        self._pool = pool
        self._registry = registry
        self._max_reply_bytes = max_reply_bytes

    async def complete(self, request: CompletionRequest, options: CallOptions = DEFAULT_OPTIONS) -> CompletionResponse:
        """One provider call for `request.model` (a resolved `provider:model`).

        Raises:
            NotConfiguredError: the provider cannot be built.
            ProviderError: the call failed, or the reply is over the size cap (not retryable).
            ConfigError: the provider raised one (a replay cassette miss).
        """
        spec = self._registry.resolve(request.model)
        provider = self._pool.get(spec)
        response = await provider.complete(request.model_copy(update={"model": spec.model}))
        # Before the cache, the journal or the caller sees it: an oversize reply fails over like a fault.
        check_reply_size(response, model_id=spec.id, max_bytes=self._max_reply_bytes)
        cost = spec.cost_usd(response.usage.input_tokens, response.usage.output_tokens)
        price = cost if cost is not None else response.cost_usd
        # A replayed answer cost nothing; what it would have cost live is kept, labelled as such.
        paid = (None if price is None else 0.0) if response.replayed else price
        return response.model_copy(
            update={
                "model": spec.id,
                "cost_usd": paid,
                "list_cost_usd": price if response.replayed else None,
                "cached": False,
                "attempts": 1,
            }
        )
