"""The `open_pull_request` flow under a real Prefect server (the session harness), against the fake GitHub."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from flows.open_pull_request import open_pull_request
from tests.fakes.github_server import FakeGitHub
from tests.tasks.pull_requests.conftest import FULL_NAME, TOKEN, Repos, git, make_repos
from vibe.errors import InputError

pytestmark = pytest.mark.slow


def _artifact_markdown(run_id: object, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            found = client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
            )
        if found or time.monotonic() > deadline:
            assert found, "the flow run has no artifact"
            return str(found[0].data)
        time.sleep(0.2)


@pytest.fixture
def repos(tmp_path: Path) -> Repos:
    return make_repos(tmp_path)


@pytest.fixture
def flow_env(monkeypatch: pytest.MonkeyPatch, vibe_home: Path) -> Callable[..., None]:
    def configure(**values: str) -> None:
        monkeypatch.setenv("VIBE_HOME", str(vibe_home))
        monkeypatch.setenv("VIBE_GITHUB_WRITE_INTERVAL_S", "0")
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return configure


def test_flow_opens_the_pr_and_links_it_in_an_artifact(
    prefect_harness: None, repos: Repos, flow_env: Callable[..., None]
) -> None:
    with FakeGitHub(TOKEN) as fake:
        fake.add_repo(FULL_NAME, bare=repos.remote)
        flow_env(GITHUB_TOKEN=TOKEN, GITHUB_API_URL=fake.api_url)
        (repos.work / "app.py").write_text("print('from the flow')\n")
        state = open_pull_request(str(repos.work), "Flow change", body="Made by a flow.", key="flow-change",
                                  github_repo=FULL_NAME, return_state=True)
        assert state.is_completed()
        outcome = state.result()
        assert outcome.number == 1
        assert outcome.created is True
        assert outcome.branch == "vibe/flow-change"
        assert fake.pulls(FULL_NAME)[0]["title"] == "Flow change"
        markdown = _artifact_markdown(state.state_details.flow_run_id)
        assert f"{fake.root}/{FULL_NAME}/pull/1" in markdown
        assert TOKEN not in markdown

        again = open_pull_request(str(repos.work), "Flow change", body="Made by a flow, again.", key="flow-change",
                                  github_repo=FULL_NAME)
        assert again.number == 1
        assert again.created is False
        assert len(fake.pulls(FULL_NAME)) == 1


def test_flow_in_local_mode_shows_the_description(
    prefect_harness: None, repos: Repos, flow_env: Callable[..., None]
) -> None:
    flow_env()
    (repos.work / "app.py").write_text("print('local flow')\n")
    state = open_pull_request(str(repos.work), "Local flow", body="Described here.", key="local-flow",
                              return_state=True)
    outcome = state.result()
    assert outcome.local is True
    assert outcome.number is None
    assert git(repos.remote, "show", "vibe/local-flow:app.py") == "print('local flow')"
    markdown = _artifact_markdown(state.state_details.flow_run_id)
    assert "Local mode" in markdown
    assert "Described here." in markdown
    assert str(outcome.description_path) in markdown


def test_flow_fails_clearly_on_a_missing_base(
    prefect_harness: None, repos: Repos, flow_env: Callable[..., None]
) -> None:
    flow_env()
    (repos.work / "app.py").write_text("print('x')\n")
    state = open_pull_request(str(repos.work), "X", base="nope", return_state=True)
    assert state.is_failed()
    with pytest.raises(InputError, match="'nope' does not exist"):
        state.result()


def test_vibe_pr_tracked_runs_the_flow(
    prefect_harness: None, repos: Repos, vibe_home: Path
) -> None:
    import json
    import os
    import subprocess
    import sys

    from prefect.settings import PREFECT_API_URL

    api = PREFECT_API_URL.value()
    assert api
    (repos.work / "app.py").write_text("print('tracked')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "GITHUB_"))}
    env.update({"VIBE_HOME": str(vibe_home), "PREFECT_API_URL": api})
    done = subprocess.run(
        [sys.executable, "-c", "from cli import main; main()", "pr", "--repo", str(repos.work),
         "--title", "Tracked", "--key", "tracked", "--json"],
        capture_output=True, text=True, env=env, timeout=180, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"branch": "vibe/tracked", "number": None, "url": None, "created": False}
    assert git(repos.remote, "show", "vibe/tracked:app.py") == "print('tracked')"
