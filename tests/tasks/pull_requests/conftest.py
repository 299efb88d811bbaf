"""Fixtures for pull-request tests: a bare remote with a `main` branch, a clone of it, the fake GitHub."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.github_server import FakeGitHub
from vibe.settings import Settings

TOKEN = "ghp_FAKEtoken0123456789abcdefghijklmnopq"
FULL_NAME = "acme/widgets"

# Identity for the test's own commits only; publishing must cope without one (see test_no_identity...).
_IDENTITY = {"GIT_AUTHOR_NAME": "Tess Ter", "GIT_AUTHOR_EMAIL": "tess@example.com",
             "GIT_COMMITTER_NAME": "Tess Ter", "GIT_COMMITTER_EMAIL": "tess@example.com"}


def git(cwd: Path, *args: str, check: bool = True) -> str:
    """Run git in `cwd` and return its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(_IDENTITY)
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout.strip()


@dataclass
class Repos:
    """A bare remote (`remote`) and a working clone of it (`work`) on `main`."""

    remote: Path
    work: Path

    def remote_branches(self) -> dict[str, str]:
        out = git(self.remote, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads")
        return dict(line.split() for line in out.splitlines())

    def show(self, ref: str, path: str) -> str:
        return git(self.remote, "show", f"{ref}:{path}")


def make_repos(tmp_path: Path) -> Repos:
    """A bare `acme/widgets.git` with one commit on `main`, and a clone of it."""
    remote = tmp_path / "remotes" / "acme" / "widgets.git"
    remote.parent.mkdir(parents=True)
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(remote), str(work))
    (work / "README.md").write_text("# widgets\n")
    (work / "app.py").write_text("print('hello')\n")
    (work / ".gitignore").write_text("*.log\n")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "initial")
    git(work, "push", "-q", "origin", "main")
    git(work, "remote", "set-head", "origin", "main")
    return Repos(remote=remote, work=work)


@pytest.fixture
def repos(tmp_path: Path) -> Repos:
    return make_repos(tmp_path)


@pytest.fixture
def fake_github(repos: Repos) -> Iterator[FakeGitHub]:
    with FakeGitHub(TOKEN) as fake:
        fake.add_repo(FULL_NAME, bare=repos.remote)
        yield fake


@pytest.fixture
def make_settings(vibe_home: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"home": vibe_home, "github_write_interval_s": 0.0}
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings], fake_github: FakeGitHub) -> Settings:
    return make_settings(github_token=TOKEN, github_api_url=fake_github.api_url)
