"""`prefect_llm_limiter` against a real Prefect server: calls share the provider's global concurrency limit,
and a server without that limit fails the call clearly instead of calling the provider unlimited.

The same on deployed workers (two workers, `vibe setup`, Secret blocks) is in `test_end_to_end.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.exceptions import ObjectNotFound
from pydantic import SecretStr

from providers.base import Message
from tasks.codegen.generate import Generation, ask_model
from tasks.llm_limits import llm_limit_name, prefect_llm_limiter
from tests.fakes.llm_server import FakeLLMServer
from vibe.errors import ConfigError
from vibe.settings import Settings

LIMIT = llm_limit_name("anthropic")


async def _delete_limit() -> None:
    async with get_client() as client:
        with contextlib.suppress(ObjectNotFound):
            await client.delete_global_concurrency_limit_by_name(LIMIT)


async def _active_slots() -> int:
    async with get_client() as client:
        return (await client.read_global_concurrency_limit_by_name(LIMIT)).active_slots


@pytest.fixture
def no_limit(prefect_harness: None) -> Iterator[None]:
    """The harness's server without `vibe-llm-anthropic` (as before `vibe setup`)."""
    asyncio.run(_delete_limit())
    yield
    asyncio.run(_delete_limit())


@pytest.fixture
def one_slot(no_limit: None) -> None:
    """`vibe-llm-anthropic` with a single slot, as `VIBE_LLM_CONCURRENCY_PER_PROVIDER=1 vibe setup` makes it."""

    async def create() -> None:
        async with get_client() as client:
            await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=LIMIT, limit=1))

    asyncio.run(create())


def _settings(server: FakeLLMServer, home: Path) -> Settings:
    return Settings(
        home=home,
        anthropic_api_key=SecretStr("sk-ant-limits"),
        anthropic_base_url=server.anthropic_base_url,
        fallbacks=(),
        replay="off",
        cache_enabled=False,
        llm_max_retries=0,
    )


async def _ask(settings: Settings, prompt: str) -> Generation:
    return await ask_model(
        [Message(role="user", content=prompt)],
        settings=settings,
        model="anthropic:claude-haiku-4-5",
        limiter=prefect_llm_limiter,
    )


@pytest.mark.usefixtures("one_slot")
def test_concurrent_calls_take_turns_on_the_providers_limit_and_give_the_slot_back(vibe_home: Path) -> None:
    with FakeLLMServer(delay_s=0.5) as server:
        settings = _settings(server, vibe_home)

        async def both() -> list[Generation]:
            return list(await asyncio.gather(_ask(settings, "first"), _ask(settings, "second")))

        replies = asyncio.run(both())
    assert sorted(g.reply for g in replies) == ["echo: first", "echo: second"]
    assert server.calls("anthropic") == 2
    assert server.max_in_flight == 1, "two calls reached the provider at once through a limit of 1"
    assert asyncio.run(_active_slots()) == 0


@pytest.mark.usefixtures("no_limit")
def test_a_missing_limit_fails_the_call_with_a_clear_error_and_calls_nothing(vibe_home: Path) -> None:
    with FakeLLMServer() as server, pytest.raises(ConfigError) as caught:
        asyncio.run(_ask(_settings(server, vibe_home), "anything"))
    message = str(caught.value)
    assert f"{LIMIT!r} does not exist" in message
    assert "run `vibe setup`" in message
    assert server.calls() == 0, "the provider was called without its limit"
