"""The model registry: which models exist, what they cost and can do, what the aliases and fallbacks are.

The table is data (`models.toml` beside this module, read once per process: `providers.table.load_table`);
this module only answers questions about it. `ModelRegistry.load()` returns the one registry of the process.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from providers.table import TABLE_PATH, load_table
from vibe.errors import ConfigError

_TABLE = TABLE_PATH


@dataclass(frozen=True)
class ModelSpec:
    """One model: `id` is `provider:model`; prices are USD per million tokens (None when unknown)."""

    provider: str
    model: str
    adapter: str
    context_window: int
    max_output: int
    input_per_mtok: float | None = None
    output_per_mtok: float | None = None
    capabilities: frozenset[str] = field(default_factory=frozenset)
    listed: bool = True

    @property
    def id(self) -> str:
        return f"{self.provider}:{self.model}"

    def cost_usd(self, input_tokens: int, output_tokens: int) -> float | None:
        """The price of a call, or None when this model's prices are unknown."""
        if self.input_per_mtok is None or self.output_per_mtok is None:
            return None
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1_000_000


class ModelRegistry:
    """Resolves model names (aliases, roles, `provider:model`) to `ModelSpec`s."""

    def __init__(self, table: Mapping[str, Any]) -> None:
        self._adapters: dict[str, str] = {name: cfg["adapter"] for name, cfg in table["providers"].items()}
        self._aliases: dict[str, str] = dict(table.get("aliases", {}))
        self._fallbacks: tuple[str, ...] = tuple(table.get("fallbacks", {}).get("default", ()))
        defaults = table.get("defaults", {})
        self._default_context = int(defaults.get("context_window", 128_000))
        self._default_max_output = int(defaults.get("max_output", 8192))
        self._default_caps = frozenset(defaults.get("capabilities", ["text"]))
        self._models: dict[str, ModelSpec] = {}
        for model_id, cfg in table.get("models", {}).items():
            provider, model = self._split(model_id)
            self._models[model_id] = ModelSpec(
                provider=provider,
                model=model,
                adapter=self._adapters[provider],
                context_window=int(cfg["context_window"]),
                max_output=int(cfg["max_output"]),
                input_per_mtok=cfg.get("input_per_mtok"),
                output_per_mtok=cfg.get("output_per_mtok"),
                capabilities=frozenset(cfg.get("capabilities", ())),
            )
        for alias, target in self._aliases.items():
            self._split(target)  # a broken alias in the table is a bug: fail at load, not at first use
            if alias in self._adapters:
                raise ConfigError(f"alias {alias!r} shadows a provider name in {_TABLE.name}")

    @classmethod
    def load(cls, path: Path | None = None) -> ModelRegistry:
        """The registry of `models.toml`, built once per process; or a fresh one read from `path`."""
        if path is None:
            return _default_registry()
        with path.open("rb") as fh:
            return cls(tomllib.load(fh))

    @property
    def providers(self) -> tuple[str, ...]:
        return tuple(self._adapters)

    @property
    def aliases(self) -> dict[str, str]:
        return dict(self._aliases)

    @property
    def default_fallbacks(self) -> tuple[str, ...]:
        return self._fallbacks

    def listed(self) -> tuple[ModelSpec, ...]:
        """Every model in the table."""
        return tuple(self._models.values())

    def resolve(self, name: str) -> ModelSpec:
        """The model that `name` (alias, role or `provider:model`) stands for.

        Raises:
            ConfigError: the provider or alias is unknown; the message lists what is known.
        """
        name = name.strip()
        target = self._aliases.get(name, name)
        if ":" not in target:
            raise ConfigError(
                f"unknown model or alias {name!r}; use provider:model with a provider of "
                f"{', '.join(self._adapters)}, or an alias of {', '.join(sorted(self._aliases))}"
            )
        provider, model = self._split(target)
        spec = self._models.get(target)
        if spec is not None:
            return spec
        return ModelSpec(
            provider=provider,
            model=model,
            adapter=self._adapters[provider],
            context_window=self._default_context,
            max_output=self._default_max_output,
            capabilities=self._default_caps,
            listed=False,
        )

    def _split(self, model_id: str) -> tuple[str, str]:
        provider, _, model = model_id.partition(":")
        if provider not in self._adapters:
            raise ConfigError(
                f"unknown provider {provider!r} in {model_id!r}; known providers: {', '.join(self._adapters)}"
            )
        if not model:
            raise ConfigError(f"model id {model_id!r} names no model; write it as {provider}:<model>")
        return provider, model


@functools.cache
def _default_registry() -> ModelRegistry:
    return ModelRegistry(load_table())
