"""Model-driven localization with a scripted model behind the real provider stack (loopback fake server)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from providers.manager import ProviderManager
from tasks.indexing import index_repository
from tasks.indexing.localize import Localization, build_localization_prompt, localize, parse_localization
from tasks.indexing.models import FileHit, SearchHit
from tests.fakes.llm_server import FakeLLMServer, prompt_of, status
from tests.tasks.indexing.conftest import MakeRepo
from vibe.settings import Settings

_MODEL = "anthropic:claude-haiku-4-5"


@pytest.fixture
def repo(make_repo: MakeRepo) -> Path:
    path = make_repo()
    index_repository(path)
    return path


@pytest.fixture
def scripted(vibe_home: Path) -> Iterator[Callable[..., tuple[FakeLLMServer, Settings]]]:
    servers: list[FakeLLMServer] = []

    def start(responder: Callable[[dict[str, Any]], str]) -> tuple[FakeLLMServer, Settings]:
        server = FakeLLMServer(responder=responder).start()
        servers.append(server)
        settings = Settings(
            home=vibe_home, anthropic_api_key=SecretStr("sk-ant-test-key"),
            anthropic_base_url=server.anthropic_base_url, model=_MODEL, fallbacks=(), replay="off",
            cache_enabled=False, llm_max_retries=0,
        )
        return server, settings

    yield start
    for server in servers:
        server.stop()


def _run(repo: Path, settings: Settings, request: str, **kwargs: Any) -> Localization:
    async def go() -> Localization:
        async with ProviderManager(settings) as manager:
            return await localize(repo, request, completer=manager, model=_MODEL, **kwargs)

    return asyncio.run(go())


def test_the_files_and_symbols_the_model_names_are_the_answer(repo: Path, scripted: Any) -> None:
    answer = {
        "files": ["app/models.py", "./app/service.py"],
        "symbols": ["app/models.py::UserAccount.get_display_name"],
    }
    server, settings = scripted(lambda body: "Here you go:\n```json\n" + json.dumps(answer) + "\n```")
    found = _run(repo, settings, "Show the display name of a user account in upper case")
    assert found == Localization(
        files=("app/models.py", "app/service.py"), symbols=("app/models.py::UserAccount.get_display_name",)
    )
    prompt = prompt_of(server.requests[0].body)
    assert "display name of a user account" in prompt
    assert "app/models.py" in prompt  # the ranked candidates and the repo map are shown


def test_a_file_that_does_not_exist_is_dropped_and_a_bare_name_is_resolved(repo: Path, scripted: Any) -> None:
    _, settings = scripted(lambda body: json.dumps({"files": ["app/nowhere.py", "service.py"]}))
    found = _run(repo, settings, "Register accounts twice")
    assert (found.files, found.source, found.dropped) == (("app/service.py",), "model", ("app/nowhere.py",))


@pytest.mark.parametrize("reply", ["", "I am not sure.", '{"files": ["../../etc/passwd", "ghost.py"]}', "{not json"])
def test_nothing_usable_falls_back_to_the_ranking(repo: Path, scripted: Any, reply: str) -> None:
    _, settings = scripted(lambda body: reply)
    found = _run(repo, settings, "display name of a user account", max_files=2)
    assert found.source == "ranking"
    assert found.files[0] == "app/models.py"
    assert len(found.files) <= 2
    assert found.note is not None


def test_an_unreachable_model_falls_back_to_the_ranking(repo: Path, scripted: Any) -> None:
    server, settings = scripted(lambda body: "unused")
    server.enqueue(status(500), status(500), status(500))
    found = _run(repo, settings, "display name of a user account")
    assert found.source == "ranking"
    assert found.note is not None
    assert "model failed" in found.note


def test_the_prompt_stays_within_its_token_budget() -> None:
    hits = tuple(SearchHit(f"pkg/m{i}.py", 1, 9, f"f{i}", 1.0, "def f():\n" * 50) for i in range(3))
    candidates = [FileHit(f"pkg/m{i}.py", 10.0 - i, hits) for i in range(200)]
    repo_map = "".join(f"pkg/m{i}.py:\n    1│def f{i}():\n" for i in range(5000))
    system, user = build_localization_prompt("Make f faster " * 100, repo_map, candidates, max_tokens=2000)
    assert len(system) + len(user) <= 2000 * 4
    assert "1. pkg/m0.py" in user
    assert "Make f faster" in user


def test_parsing_never_raises_on_odd_replies() -> None:
    known = ["a/b.py", "c/b.py", "d.py"]
    for reply in ['{"files": "d.py"}', '{"files": [1, null, "d.py"]}', "[]", "b.py", '{"files": ["b.py"]}', "\0"]:
        found = parse_localization(reply, known_files=known, ranked=["d.py"])
        assert found.files  # an ambiguous `b.py` is dropped; the ranking fills in


def test_the_localize_request_step_asks_through_the_flow_runs_provider_stack(repo: Path, scripted: Any) -> None:
    from tasks.codegen.prefect_tasks import open_provider_manager
    from tasks.indexing.prefect_tasks import localize_request_task

    server, settings = scripted(lambda body: json.dumps({"files": ["app/service.py"]}))
    with open_provider_manager(settings) as manager:
        found = localize_request_task.fn(repo, "register an account", manager=manager, model=_MODEL)
    assert (found.files, found.source) == (("app/service.py",), "model")
    assert len(server.requests) == 1
