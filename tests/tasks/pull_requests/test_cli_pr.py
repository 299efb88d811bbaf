"""`vibe pr` as a user runs it: a real subprocess, untracked (no PREFECT_API_URL), against the fake GitHub."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.github_server import FakeGitHub
from tests.tasks.pull_requests.conftest import FULL_NAME, TOKEN, Repos, git

pytestmark = pytest.mark.slow


def vibe(*args: str, home: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "GITHUB_", "PREFECT_API_URL"))}
    full.update({"VIBE_HOME": str(home), "VIBE_GITHUB_WRITE_INTERVAL_S": "0"})
    full.update(env or {})
    return subprocess.run([sys.executable, "-c", "from cli import main; main()", *args],
                          capture_output=True, text=True, env=full, timeout=120, check=False)


def test_vibe_pr_json_opens_then_updates(repos: Repos, fake_github: FakeGitHub, vibe_home: Path) -> None:
    env = {"GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": fake_github.api_url}
    (repos.work / "app.py").write_text("print('cli')\n")
    args = ["pr", "--repo", str(repos.work), "--title", "CLI change", "--key", "cli-change",
            "--github-repo", FULL_NAME, "--json"]
    first = vibe(*args, home=vibe_home, env=env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"branch": "vibe/cli-change", "number": 1,
                                        "url": f"{fake_github.root}/{FULL_NAME}/pull/1", "created": True}

    second = vibe(*args, "--body", "More words.", "--draft", home=vibe_home, env=env)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["created"] is False
    (pr,) = fake_github.pulls(FULL_NAME)
    assert pr["body"].startswith("More words.")
    assert pr["draft"] is True
    for output in (first.stdout, first.stderr, second.stdout, second.stderr):
        assert TOKEN not in output


def test_vibe_pr_local_mode_says_so(repos: Repos, vibe_home: Path) -> None:
    (repos.work / "app.py").write_text("print('local cli')\n")
    done = vibe("pr", "--repo", str(repos.work), "--title", "Local", "--key", "local", home=vibe_home)
    assert done.returncode == 0, done.stderr
    assert "local mode" in done.stdout
    assert "vibe/local" in done.stdout
    assert str(vibe_home) in done.stdout
    as_json = vibe("pr", "--repo", str(repos.work), "--title", "Local", "--key", "local", "--json", home=vibe_home)
    assert json.loads(as_json.stdout) == {"branch": "vibe/local", "number": None, "url": None, "created": False}
    assert "local mode" in as_json.stderr


@pytest.mark.parametrize("case", ["nothing", "no-remote", "bad-base", "bad-token", "hook"])
def test_vibe_pr_errors_are_one_clear_line(
    case: str, repos: Repos, fake_github: FakeGitHub, vibe_home: Path, tmp_path: Path
) -> None:
    env = {"GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": fake_github.api_url}
    args = ["pr", "--repo", str(repos.work), "--title", "T", "--github-repo", FULL_NAME]
    expected = {"nothing": "nothing to commit", "no-remote": "no git remote", "bad-base": "does not exist",
                "bad-token": "rejected the token", "hook": "rejected by the remote"}[case]
    if case != "nothing":
        (repos.work / "app.py").write_text("print('x')\n")
    if case == "no-remote":
        git(repos.work, "remote", "remove", "origin")
    if case == "bad-base":
        args += ["--base", "nope"]
    if case == "bad-token":
        env["GITHUB_TOKEN"] = "ghp_definitely_wrong"
    if case == "hook":
        hook = repos.remote / "hooks" / "pre-receive"
        hook.write_text("#!/bin/sh\necho 'no pushes' >&2\nexit 1\n")
        hook.chmod(0o755)
    done = vibe(*args, home=vibe_home, env=env)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ")
    assert expected in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert env["GITHUB_TOKEN"] not in done.stderr
