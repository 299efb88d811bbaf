"""Local mode: no GitHub token, the branch goes to whatever remote exists and the description to a file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tasks.pull_requests import marker, marker_key, publish_pull_request
from tests.tasks.pull_requests.conftest import Repos, git
from vibe.settings import Settings


def test_local_mode_pushes_to_the_bare_remote_and_writes_the_description(
    repos: Repos, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings()
    (repos.work / "app.py").write_text("print('local')\n")
    result = publish_pull_request(repos.work, title="Local change", body="Body text.", key="local-change",
                                  settings=settings)

    assert result.local
    assert result.number is None
    assert result.url is None
    assert not result.created
    assert result.base == "main"  # from the remote's HEAD
    assert result.to_json_dict() == {"branch": "vibe/local-change", "number": None, "url": None, "created": False}
    assert git(repos.remote, "show", "vibe/local-change:app.py") == "print('local')"
    assert result.description_path is not None
    assert result.description_path.is_relative_to(settings.home)
    text = result.description_path.read_text()
    assert text.startswith("# Local change\n")
    assert "Body text." in text
    assert marker("local-change") in text
    assert "`vibe/local-change`" in text
    assert "No GitHub token" in text

    again = publish_pull_request(repos.work, title="Local change", body="Body text, v2.", key="local-change",
                                 settings=settings)
    assert again.description_path == result.description_path
    assert not again.pushed
    assert "Body text, v2." in again.description_path.read_text()
    assert marker_key(again.description_path.read_text()) == "local-change"
    assert git(repos.remote, "for-each-ref", "--format=%(refname:short)", "refs/heads") == "main\nvibe/local-change"


def test_local_mode_nothing_to_commit(repos: Repos, make_settings: Callable[..., Settings]) -> None:
    result = publish_pull_request(repos.work, title="Nothing", body="", settings=make_settings())
    assert result.nothing_to_commit
    assert result.description_path is None
    assert git(repos.remote, "for-each-ref", "--format=%(refname:short)", "refs/heads") == "main"


def test_commits_work_without_a_configured_identity(
    repos: Repos, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A fresh worker machine: no ~/.gitconfig, no system config, no identity in the repository.
    empty_home = tmp_path / "empty-home"
    empty_home.mkdir()
    monkeypatch.setenv("HOME", str(empty_home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(name, raising=False)
    (repos.work / "app.py").write_text("print('who am i')\n")
    result = publish_pull_request(repos.work, title="Identity", body="", key="identity", settings=make_settings())
    author = git(repos.remote, "log", "-1", "--format=%an <%ae>", result.branch)
    assert author == "vibe-pipelines <vibe-pipelines@users.noreply.github.com>"


def test_an_empty_token_means_local_mode(repos: Repos, make_settings: Callable[..., Settings]) -> None:
    (repos.work / "app.py").write_text("print('empty token')\n")
    result = publish_pull_request(repos.work, title="Empty", body="", key="empty",
                                  settings=make_settings(github_token=""))
    assert result.local
    assert result.description_path is not None
