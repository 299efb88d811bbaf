"""The provider table in `models.toml`: every variable it names is a setting that really reads that variable,
and the factory, Settings, the registry and the deployment catalog all answer from it."""

from __future__ import annotations

import pytest
from pydantic import AliasChoices, SecretStr

from deployments import catalog
from providers.registry import ModelRegistry
from providers.table import ProviderInfo, api_key, base_url, has_key, provider_info, provider_table
from vibe.errors import ConfigError
from vibe.settings import Settings


def _env_names(field: str) -> set[str]:
    info = Settings.model_fields[field]
    alias = info.validation_alias
    names = {f"VIBE_{field.upper()}"} if alias is None else set()
    if isinstance(alias, AliasChoices):
        names |= {str(choice) for choice in alias.choices}
    elif isinstance(alias, str):
        names.add(alias)
    return names


@pytest.mark.parametrize("row", list(provider_table().values()), ids=lambda row: row.name)
def test_every_variable_of_the_table_is_the_setting_it_names(row: ProviderInfo) -> None:
    info = provider_info(row.name)
    for env, field in ((info.key_env, info.key_setting), (info.base_url_env, info.base_url_setting)):
        if env is None:
            continue
        assert field in Settings.model_fields, f"{info.name}: {env} names no Settings field {field}"
        assert env in _env_names(field), f"{info.name}: Settings.{field} does not read {env}"


def test_keys_and_base_urls_come_from_the_settings_fields_the_table_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XAI_API_KEY", "xai-from-env")
    monkeypatch.setenv("VIBE_COMPAT_BASE_URL", "http://127.0.0.1:9/v1")
    settings = Settings(anthropic_api_key=SecretStr("sk-ant"))
    assert api_key(settings, "anthropic") == SecretStr("sk-ant")
    assert api_key(settings, "xai") == SecretStr("xai-from-env")
    assert api_key(settings, "openai") is None
    for name in provider_table():
        assert api_key(settings, name) == settings.api_key(name)
    assert base_url(settings, "compat") == "http://127.0.0.1:9/v1"
    assert base_url(settings, "anthropic") is None  # the SDK's default, which reads ANTHROPIC_BASE_URL itself
    assert (has_key(settings, "anthropic"), has_key(settings, "openai"), has_key(settings, "compat")) == (
        True,
        False,
        True,
    )
    assert set(settings.secret_values()) == {"sk-ant", "xai-from-env"}


def test_the_registry_and_the_catalog_list_the_tables_providers() -> None:
    table = provider_table()
    assert ModelRegistry.load().providers == tuple(table)
    assert ModelRegistry.load() is ModelRegistry.load()  # read once per process
    assert catalog.LLM_PROVIDERS == ("anthropic", "openai", "gemini", "xai", "compat")
    limits = [catalog.llm_limit_name(p) for p in catalog.LLM_PROVIDERS]
    assert limits == [f"vibe-llm-{p}" for p in catalog.LLM_PROVIDERS]
    assert catalog.SECRET_BLOCKS == {
        "ANTHROPIC_API_KEY": "vibe-anthropic-api-key",
        "OPENAI_API_KEY": "vibe-openai-api-key",
        "GEMINI_API_KEY": "vibe-gemini-api-key",
        "XAI_API_KEY": "vibe-xai-api-key",
        "VIBE_COMPAT_API_KEY": "vibe-compat-api-key",
        "GITHUB_TOKEN": "vibe-github-token",
    }


def test_an_unknown_provider_is_a_config_error_listing_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="known providers: anthropic, openai"):
        provider_info("nope")
