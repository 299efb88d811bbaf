"""`build_provider`: the adapter by registry data, and the replay modes off / replay / record / auto."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from providers.anthropic import AnthropicProvider
from providers.base import CompletionRequest, CompletionResponse, Provider
from providers.factory import build_provider
from providers.openai_compat import OpenAICompatibleProvider
from providers.registry import ModelRegistry, ModelSpec
from providers.replay import Cassette, RecordingProvider, ReplayProvider
from tests.fakes.llm_server import FakeLLMServer
from vibe.errors import ConfigError
from vibe.settings import Settings

REGISTRY = ModelRegistry.load()


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"replay": "off", "cassette": None}
    values.update(overrides)
    return Settings(**values)


def spec(model_id: str) -> ModelSpec:
    return REGISTRY.resolve(model_id)


def answer(provider: Provider, prompt: str, model: str) -> CompletionResponse:
    async def go() -> CompletionResponse:
        try:
            return await provider.complete(CompletionRequest.of(prompt, model=model))
        finally:
            await provider.aclose()

    return asyncio.run(go())


def cassette_with(path: Path, provider: str, model: str, prompt: str, text: str) -> Path:
    request = CompletionRequest.of(prompt, model=model)
    Cassette(path).put(request, f"{provider}:{model}", CompletionResponse(text=text, provider=provider, model=model))
    return path


@pytest.mark.parametrize(("model_id", "adapter_type"), [
    ("anthropic:claude-sonnet-4-6", AnthropicProvider),
    ("openai:gpt-5", OpenAICompatibleProvider),
    ("gemini:gemini-2.5-pro", OpenAICompatibleProvider),
    ("xai:grok-4", OpenAICompatibleProvider),
])  # fmt: skip
def test_off_mode_builds_the_real_adapter_named_after_the_provider(model_id: str, adapter_type: type) -> None:
    keys = {"anthropic_api_key": "k1", "openai_api_key": "k2", "gemini_api_key": "k3", "xai_api_key": "k4"}
    provider = build_provider(spec(model_id), settings(**keys))
    assert isinstance(provider, adapter_type)
    assert provider.name == model_id.split(":")[0]


@pytest.mark.parametrize(("model_id", "env_var"), [
    ("anthropic:claude-sonnet-4-6", "ANTHROPIC_API_KEY"),
    ("openai:gpt-5", "OPENAI_API_KEY"),
    ("gemini:gemini-2.5-pro", "GEMINI_API_KEY"),
    ("xai:grok-4", "XAI_API_KEY"),
])  # fmt: skip
def test_a_missing_key_names_the_variable_to_set(model_id: str, env_var: str) -> None:
    with pytest.raises(ConfigError, match=f"set {env_var}"):
        build_provider(spec(model_id), settings())


def test_compat_needs_no_key_and_uses_its_base_url(llm_server: FakeLLMServer) -> None:
    provider = build_provider(spec("compat:llama3.2"), settings(compat_base_url=llm_server.openai_base_url))
    response = answer(provider, "hello", "llama3.2")
    assert (response.provider, response.text) == ("compat", "echo: hello")
    assert llm_server.requests[0].path == "/v1/chat/completions"


@pytest.mark.parametrize(("provider_name", "url_setting", "key_setting"), [
    ("gemini", "gemini_base_url", "gemini_api_key"),
    ("xai", "xai_base_url", "xai_api_key"),
    ("openai", "openai_base_url", "openai_api_key"),
])  # fmt: skip
def test_openai_compatible_vendors_go_to_their_configured_endpoint_with_their_own_key(
    llm_server: FakeLLMServer, provider_name: str, url_setting: str, key_setting: str
) -> None:
    config = settings(**{url_setting: llm_server.openai_base_url, key_setting: f"{provider_name}-key"})
    response = answer(build_provider(spec(f"{provider_name}:some-model"), config), "hi", "some-model")
    assert response.provider == provider_name
    assert llm_server.requests[0].headers["authorization"] == f"Bearer {provider_name}-key"


def test_anthropic_goes_to_its_configured_endpoint(llm_server: FakeLLMServer) -> None:
    config = settings(anthropic_api_key="ant-key", anthropic_base_url=llm_server.anthropic_base_url)
    response = answer(build_provider(spec("anthropic:claude-sonnet-4-6"), config), "hi", "claude-sonnet-4-6")
    assert response.provider == "anthropic"
    assert llm_server.requests[0].path == "/v1/messages"
    assert llm_server.requests[0].headers["authorization"] == "Bearer ant-key"


def test_replay_mode_answers_from_the_cassette_even_with_a_key(tmp_path: Path) -> None:
    cassette = cassette_with(tmp_path / "c.json", "anthropic", "claude-sonnet-4-6", "hi", "recorded hi")
    config = settings(replay="replay", cassette=cassette, anthropic_api_key="k")
    provider = build_provider(spec("anthropic:claude-sonnet-4-6"), config)
    assert isinstance(provider, ReplayProvider)
    assert answer(provider, "hi", "claude-sonnet-4-6").text == "recorded hi"


def test_replay_mode_without_a_cassette_setting_says_which_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="VIBE_CASSETTE"):
        build_provider(spec("openai:gpt-5"), settings(replay="replay"))


def test_replay_mode_with_a_missing_cassette_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "c.json"
    with pytest.raises(ConfigError, match=str(missing)):
        build_provider(spec("openai:gpt-5"), settings(replay="replay", cassette=missing))


def test_record_mode_records_what_the_real_provider_answers(llm_server: FakeLLMServer, tmp_path: Path) -> None:
    cassette = tmp_path / "rec.json"
    config = settings(
        replay="record", cassette=cassette, openai_api_key="k", openai_base_url=llm_server.openai_base_url
    )
    provider = build_provider(spec("openai:gpt-5"), config)
    assert isinstance(provider, RecordingProvider)
    assert answer(provider, "record me", "gpt-5").text == "echo: record me"
    replayed = build_provider(spec("openai:gpt-5"), settings(replay="replay", cassette=cassette))
    assert answer(replayed, "record me", "gpt-5").text == "echo: record me"


def test_record_mode_without_a_key_is_the_missing_key_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="set OPENAI_API_KEY"):
        build_provider(spec("openai:gpt-5"), settings(replay="record", cassette=tmp_path / "c.json"))


def test_auto_mode_prefers_the_real_provider_when_a_key_exists(tmp_path: Path) -> None:
    cassette = cassette_with(tmp_path / "c.json", "openai", "gpt-5", "hi", "recorded")
    provider = build_provider(spec("openai:gpt-5"), settings(replay="auto", cassette=cassette, openai_api_key="k"))
    assert isinstance(provider, OpenAICompatibleProvider)


def test_auto_mode_without_a_key_replays_the_cassette(tmp_path: Path) -> None:
    cassette = cassette_with(tmp_path / "c.json", "openai", "gpt-5", "hi", "recorded")
    provider = build_provider(spec("openai:gpt-5"), settings(replay="auto", cassette=cassette))
    assert isinstance(provider, ReplayProvider)
    assert answer(provider, "hi", "gpt-5").text == "recorded"


def test_auto_mode_without_key_or_cassette_names_both_ways_out() -> None:
    with pytest.raises(ConfigError) as info:
        build_provider(spec("anthropic:claude-sonnet-4-6"), settings(replay="auto"))
    assert "set ANTHROPIC_API_KEY" in str(info.value)
    assert "VIBE_CASSETTE" in str(info.value)


def test_auto_mode_compat_is_real_without_a_key(tmp_path: Path) -> None:
    provider = build_provider(spec("compat:llama3.2"), settings(replay="auto", cassette=tmp_path / "c.json"))
    assert isinstance(provider, OpenAICompatibleProvider)


@pytest.mark.parametrize("mode", ["off", "auto", "record", "replay"])
def test_replay_models_always_answer_from_the_cassette(tmp_path: Path, mode: str) -> None:
    cassette = cassette_with(tmp_path / "c.json", "replay", "default", "demo prompt", "demo answer")
    provider = build_provider(spec("replay:default"), settings(replay=mode, cassette=cassette))
    assert isinstance(provider, ReplayProvider)
    response = answer(provider, "demo prompt", "default")
    assert (response.text, response.provider) == ("demo answer", "replay")


def test_replay_models_without_a_cassette_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="VIBE_CASSETTE"):
        build_provider(spec("replay:default"), settings())


def test_an_unknown_adapter_lists_the_known_ones() -> None:
    odd = ModelSpec(provider="mystery", model="m", adapter="carrier-pigeon", context_window=1, max_output=1)
    with pytest.raises(ConfigError, match="known adapters: anthropic, openai, replay"):
        build_provider(odd, settings())
