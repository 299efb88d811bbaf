"""`ask_model` and the provider stack: a composed manager is used as passed; without one, the stack built for
the settings is reused by later calls in the same event loop, and closed when the loop shuts down."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from providers.base import Message
from providers.manager import ProviderManager, shared_manager
from tasks.codegen.generate import ask_model
from tests.fakes.llm_server import FakeLLMServer, status
from vibe.errors import AllModelsFailedError, ProviderError
from vibe.settings import Settings


def _settings(server: FakeLLMServer, home: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "home": home,
        "redis_url": None,
        "replay": "off",
        "fallbacks": (),
        "anthropic_api_key": "sk-ant-generate",
        "anthropic_base_url": server.anthropic_base_url,
        "llm_retry_base_s": 0.001,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


MESSAGES = [Message(role="user", content="hello")]


def test_the_stack_built_for_the_settings_is_reused_by_the_next_call(tmp_path: Path) -> None:
    with FakeLLMServer() as server:
        settings = _settings(server, tmp_path / "home")

        async def twice() -> tuple[bool, bool, bool]:
            first = await shared_manager(settings)
            one = await ask_model(MESSAGES, settings=settings, model="fast")
            two = await ask_model(MESSAGES, settings=settings, model="fast")
            same = first is await shared_manager(settings)
            return same, one.cached, two.cached

        same, first_cached, second_cached = asyncio.run(twice())
    assert same
    assert (first_cached, second_cached) == (False, True)
    assert server.calls("anthropic") == 1


def test_a_manager_passed_in_is_used_and_left_open(tmp_path: Path) -> None:
    with FakeLLMServer() as server:
        settings = _settings(server, tmp_path / "home", cache_enabled=False)

        async def run() -> tuple[str, str, bool]:
            async with ProviderManager(settings) as manager:
                one = await ask_model(MESSAGES, settings=settings, model="fast", manager=manager)
                two = await ask_model(MESSAGES, settings=settings, model="fast", manager=manager)
                return one.reply, two.reply, manager.cache is not None

        first, second, still_open = asyncio.run(run())
    assert first == second == "echo: hello"
    assert still_open
    assert server.calls("anthropic") == 2


def test_every_model_failed_is_an_exception_group_of_each_models_error(tmp_path: Path) -> None:
    with FakeLLMServer() as server:
        settings = _settings(
            server,
            tmp_path / "home",
            anthropic_api_key="",
            openai_api_key="sk-openai",
            openai_base_url=server.openai_base_url,
            llm_max_retries=0,
            provider_cooldown_s=0,
        )
        server.enqueue(status(503))

        async def run() -> None:
            async with ProviderManager(settings) as manager:
                await ask_model(MESSAGES, settings=settings, model="fast", fallbacks=["gpt"], manager=manager)

        with pytest.raises(AllModelsFailedError) as caught:
            asyncio.run(run())
    group = caught.value
    assert isinstance(group, ProviderError)
    assert isinstance(group, ExceptionGroup)
    assert [type(e).__name__ for e in group.exceptions] == ["NotConfiguredError", "ModelFailedError"]
    message = str(group)
    assert message.startswith("every model failed after 1 provider calls: ")
    assert "anthropic:claude-haiku-4-5" in message
    assert "ANTHROPIC_API_KEY" in message
    assert "openai:gpt-5: openai: HTTP 503" in message
    assert (group.status, group.retryable) == (503, True)
