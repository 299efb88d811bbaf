"""The model registry: aliases, `provider:model` ids, prices and clear errors for unknown names."""

from __future__ import annotations

import pytest

from providers.registry import ModelRegistry
from vibe.errors import ConfigError


@pytest.fixture(scope="module")
def registry() -> ModelRegistry:
    return ModelRegistry.load()


def test_aliases_resolve_to_listed_models(registry: ModelRegistry) -> None:
    smart = registry.resolve("smart")
    assert smart.id == "anthropic:claude-sonnet-4-6"
    assert smart.context_window == 200_000
    assert "tools" in smart.capabilities
    assert registry.resolve("fast").provider == "anthropic"


def test_cost_is_computed_from_the_table(registry: ModelRegistry) -> None:
    spec = registry.resolve("openai:gpt-5")
    assert spec.cost_usd(1_000_000, 1_000_000) == pytest.approx(11.25)


def test_unlisted_model_of_a_known_provider_works_without_a_price(registry: ModelRegistry) -> None:
    spec = registry.resolve("openai:some-future-model")
    assert spec.adapter == "openai"
    assert spec.listed is False
    assert spec.cost_usd(100, 100) is None
    assert spec.context_window > 0


@pytest.mark.parametrize(
    ("name", "mentions"),
    [("nosuchthing", ["smart", "anthropic"]), ("acme:model-1", ["acme", "openai", "xai"]), ("openai:", ["openai"])],
)
def test_unknown_names_list_what_is_known(registry: ModelRegistry, name: str, mentions: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        registry.resolve(name)
    for word in mentions:
        assert word in str(info.value)


def test_every_fallback_and_alias_in_the_table_resolves(registry: ModelRegistry) -> None:
    for model_id in registry.default_fallbacks:
        assert registry.resolve(model_id).listed
    for alias in registry.aliases:
        assert registry.resolve(alias).listed
