"""What every layer shares: the one method (`Model.complete`), the per-call options and the chain of models.

A layer is a `Model`: it answers `complete(request, options)` itself or by calling the `Model` it wraps, so
layers compose like pydantic-ai's `WrapperModel`s. Above the fallback layer `request.model` is what the caller
named (an alias, a role or `provider:model`); below it, the resolved `provider:model` of one model of the chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from providers.base import CompletionRequest, CompletionResponse
from providers.registry import ModelRegistry, ModelSpec


@dataclass(frozen=True)
class CallOptions:
    """Per-call choices that layers read and pass down unchanged.

    Attributes:
        fallbacks: models to try after the requested one (None: the settings' chain, else the registry's).
        use_cache: False bypasses the cache layer for this call: no read, no write, no single-flight.
    """

    fallbacks: tuple[str, ...] | None = None
    use_cache: bool = True


DEFAULT_OPTIONS = CallOptions()


class Model(Protocol):
    """One layer of the provider stack."""

    async def complete(self, request: CompletionRequest, options: CallOptions = DEFAULT_OPTIONS) -> CompletionResponse:
        """Answer `request`, or raise `ProviderError` / `ConfigError`."""
        ...


class Router:
    """Resolves names to models and a request to its chain: the model named, then its distinct fallbacks.

    Args:
        registry: the model registry.
        fallbacks: the configured chain (`VIBE_FALLBACKS`); None means the registry's default chain.
    """

    def __init__(self, registry: ModelRegistry, fallbacks: Sequence[str] | None) -> None:
        self.registry = registry
        self._fallbacks = None if fallbacks is None else tuple(fallbacks)

    def resolve(self, name: str) -> ModelSpec:
        """The model `name` stands for (see `ModelRegistry.resolve`)."""
        return self.registry.resolve(name)

    def chain(self, model: str, fallbacks: Sequence[str] | None = None) -> tuple[ModelSpec, ...]:
        """The models to try, in order: `model`, then the distinct fallbacks.

        Fallbacks are `fallbacks` when given, else the configured chain, else the registry's default chain.

        Raises:
            ConfigError: a name in the chain is unknown (the message lists what is known).
        """
        primary = self.registry.resolve(model)
        names = fallbacks if fallbacks is not None else self._fallbacks
        if names is None:
            names = self.registry.default_fallbacks
        specs = [primary]
        for name in names:
            spec = self.registry.resolve(name)
            if all(spec.id != seen.id for seen in specs):
                specs.append(spec)
        return tuple(specs)
