"""Fixtures of the pipeline's end-to-end tests: the sample project pushed to a bare `origin`, the fake GitHub,
and a runner that calls the pipeline's steps as plain functions with a scripted model."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from cli.demo import REQUEST, SAMPLE_REPO
from flows.feature_pipeline import feature_pipeline
from tasks.pipeline.outcome import RunSummary
from tests.fakes.github_server import FakeGitHub
from tests.fakes.llm_server import FakeLLMServer
from tests.tasks.pull_requests.conftest import FULL_NAME, TOKEN, git
from vibe.settings import Settings, use_settings


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The sample project, committed and pushed to a bare `origin`."""
    remote = tmp_path / "remotes" / "acme" / "widgets.git"
    remote.parent.mkdir(parents=True)
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    work = tmp_path / "work"
    shutil.copytree(SAMPLE_REPO, work)
    git(work, "init", "-q", "-b", "main")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "initial")
    git(work, "remote", "add", "origin", str(remote))
    git(work, "push", "-q", "origin", "main")
    return work


@pytest.fixture
def github(project: Path) -> Iterator[FakeGitHub]:
    with FakeGitHub(TOKEN) as fake:
        fake.add_repo(FULL_NAME, bare=project.parent / "remotes" / "acme" / "widgets.git")
        yield fake


Script = Callable[[dict[str, Any]], str]


@pytest.fixture
def run(project: Path, github: FakeGitHub, vibe_home: Path) -> Iterator[Callable[..., Any]]:
    """Runs the pipeline's steps as plain calls (`feature_pipeline.fn`) with a scripted model."""
    servers: list[FakeLLMServer] = []

    def start(responder: Script, **overrides: Any) -> tuple[FakeLLMServer, Settings]:
        server = FakeLLMServer(responder=responder).start()
        servers.append(server)
        values: dict[str, Any] = {
            "home": vibe_home,
            "anthropic_api_key": SecretStr("sk-ant-test-key"),
            "anthropic_base_url": server.anthropic_base_url,
            "model": "anthropic:claude-haiku-4-5",
            "fallbacks": (),
            "replay": "off",
            "cache_enabled": False,
            "llm_max_retries": 0,
            "github_token": SecretStr(TOKEN),
            "github_api_url": github.api_url,
            "github_write_interval_s": 0.0,
        }
        values.update(overrides)
        return server, Settings(**values)

    def call(settings: Settings, **arguments: Any) -> RunSummary:
        with use_settings(settings):
            return feature_pipeline.fn(request=REQUEST, repo_path=str(project), github_repo=FULL_NAME, **arguments)

    start.call = call  # type: ignore[attr-defined]
    yield start
    for server in servers:
        server.stop()
