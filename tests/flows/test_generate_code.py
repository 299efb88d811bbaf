"""generate_code: one model reply turned into checked edits, against the fake LLM server and a real repository."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from cli.demo import REQUEST, SAMPLE_REPO
from flows.generate_code import CodeProposal, generate_code
from tasks.codegen.apply import UnsafeEditError
from tests.demo_script import FENCE, FIRST_REPLY
from tests.fakes.llm_server import FakeLLMServer, system_of
from tests.tasks.pull_requests.conftest import git
from vibe.errors import BudgetExceededError
from vibe.settings import Settings, use_settings


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    work = tmp_path / "textstats"
    shutil.copytree(SAMPLE_REPO, work)
    git(work, "init", "-q", "-b", "main")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "initial")
    return work


def settings_for(server: FakeLLMServer, home: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "home": home,
        "anthropic_api_key": SecretStr("sk-ant-test-key"),
        "anthropic_base_url": server.anthropic_base_url,
        "model": "anthropic:claude-haiku-4-5",
        "fallbacks": (),
        "replay": "off",
        "cache_enabled": False,
        "llm_max_retries": 0,
    }
    values.update(overrides)
    return Settings(**values)


def _direct(settings: Settings, *args: Any, **kwargs: Any) -> CodeProposal:
    with use_settings(settings):
        return generate_code.fn(*args, **kwargs)


def test_reply_becomes_checked_edits_and_nothing_is_written(repo: Path, vibe_home: Path) -> None:
    with FakeLLMServer(responder=lambda body: FIRST_REPLY) as server:
        result = _direct(settings_for(server, vibe_home), REQUEST, str(repo))
        body = server.requests[0].body or {}
    assert [(e.path, e.kind) for e in result.edits] == [
        ("textstats/stats.py", "search_replace"),
        ("tests/test_median.py", "whole"),
    ]
    assert result.problems == []
    assert result.applied == []
    assert not (repo / "tests" / "test_median.py").exists()
    # The prompt states the edit formats and carries the repository's code and map.
    assert "<<<<<<< SEARCH" in system_of(body)
    user = body["messages"][0]["content"]
    text = user if isinstance(user, str) else "".join(part["text"] for part in user)
    assert "def word_counts(text: str)" in text
    assert "## Repository map" in text
    assert result.cost_usd > 0


def test_apply_writes_valid_edits(repo: Path, vibe_home: Path) -> None:
    with FakeLLMServer(responder=lambda body: FIRST_REPLY) as server:
        result = _direct(settings_for(server, vibe_home), REQUEST, str(repo), apply=True)
    assert result.applied == ["textstats/stats.py", "tests/test_median.py"]
    assert "def median" in (repo / "textstats" / "stats.py").read_text()


def test_search_that_matches_twice_is_a_problem_for_the_model(repo: Path, vibe_home: Path) -> None:
    ambiguous = (
        f"textstats/stats.py\n{FENCE}\n<<<<<<< SEARCH\n    if not values:\n=======\n    if not values:  # x\n"
        f">>>>>>> REPLACE\n{FENCE}\n"
    )
    stats = repo / "textstats" / "stats.py"
    stats.write_text(stats.read_text() + "\n\ndef spread(values):\n    if not values:\n        return 0\n")
    before = (repo / "textstats" / "stats.py").read_text()
    with FakeLLMServer(responder=lambda body: ambiguous) as server:
        result = _direct(settings_for(server, vibe_home), REQUEST, str(repo), apply=True)
    assert any("matches 2 times" in p for p in result.problems)
    assert result.applied == []
    assert (repo / "textstats" / "stats.py").read_text() == before


def test_refused_edit_fails_with_a_clear_message(repo: Path, vibe_home: Path) -> None:
    hostile = f"../escape.py\n{FENCE}\nprint('out')\n{FENCE}\n"
    refused = pytest.raises(UnsafeEditError, match=r"'\.\.' is not allowed")
    with FakeLLMServer(responder=lambda body: hostile) as server, refused:
        _direct(settings_for(server, vibe_home), REQUEST, str(repo), apply=True)
    assert not (repo.parent / "escape.py").exists()


def test_a_prompt_over_the_budget_is_never_sent(repo: Path, vibe_home: Path) -> None:
    with FakeLLMServer(responder=lambda body: FIRST_REPLY) as server:
        with pytest.raises(BudgetExceededError, match="token budget"):
            _direct(settings_for(server, vibe_home, budget_tokens=100), REQUEST, str(repo))
        assert server.calls() == 0


def test_as_a_flow_it_records_the_edits_as_an_artifact(prefect_harness: None, repo: Path, vibe_home: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with FakeLLMServer(responder=lambda body: FIRST_REPLY) as server, use_settings(settings_for(server, vibe_home)):
        state = generate_code(REQUEST, str(repo), return_state=True)
    assert state.is_completed()
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
    markdown = next(str(a.data) for a in artifacts if a.type == "markdown")
    assert "| `tests/test_median.py` | whole | - |" in markdown
    assert "| `textstats/stats.py` | search_replace | 1 |" in markdown
