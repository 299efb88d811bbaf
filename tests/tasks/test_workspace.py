"""Workspaces are real git worktrees of real repositories made in tmp_path, and leave nothing behind."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tasks.workspace import open_workspace
from vibe.errors import InputError


@pytest.fixture(autouse=True)
def git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commits in test repositories work on a machine without a global git identity."""
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "vibe tests")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "tests@vibe.invalid")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def snapshot(repo: Path) -> tuple[str, str, list[str], str]:
    """What a user could see of their repository: status, worktrees, every file under .git, HEAD."""
    files = sorted(str(p.relative_to(repo)) for p in (repo / ".git").rglob("*") if p.is_file())
    status = git(repo, "status", "--porcelain", "--ignored")
    return status, git(repo, "worktree", "list"), files, git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "project"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "app.py").write_text("VALUE = 1\n")
    (repo / ".gitignore").write_text("*.log\n")
    (repo / "README.md").write_text("# project\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    git(repo, "tag", "v1")
    (repo / "app.py").write_text("VALUE = 2\n")
    git(repo, "commit", "-q", "-am", "second")
    return repo


def test_workspace_checks_out_the_ref_outside_the_repo_and_removes_everything(repo: Path) -> None:
    before = snapshot(repo)
    with open_workspace(repo, "v1") as ws:
        assert (ws.path / "app.py").read_text() == "VALUE = 1\n"
        assert ws.base_commit == git(repo, "rev-parse", "v1").strip()
        assert repo not in ws.path.parents
        assert ws.repo == repo.resolve()
        (ws.path / "app.py").write_text("VALUE = 3\n")
        (ws.path / "debug.log").write_text("ignored\n")
        path = ws.path
    assert not path.exists()
    assert not path.parent.exists()
    assert snapshot(repo) == before
    assert (repo / "app.py").read_text() == "VALUE = 2\n"


def test_diff_and_changed_files_cover_edits_new_and_deleted_files(repo: Path) -> None:
    with open_workspace(repo) as ws:
        (ws.path / "app.py").write_text("VALUE = 42\n")
        (ws.path / "pkg").mkdir()
        (ws.path / "pkg" / "new.py").write_text("print('hi')\n")
        (ws.path / "data.bin").write_bytes(b"\x00\x01\x02")
        (ws.path / "README.md").unlink()
        (ws.path / "noise.log").write_text("ignored files are not changes\n")
        assert ws.changed_files() == ["README.md", "app.py", "data.bin", "pkg/new.py"]
        patch = ws.diff()
    assert "+VALUE = 42" in patch
    assert "new file mode" in patch
    # The patch replays the same changes on a fresh checkout of the same commit.
    with open_workspace(repo) as other:
        other.apply_patch(patch)
        assert (other.path / "pkg" / "new.py").read_text() == "print('hi')\n"
        assert (other.path / "data.bin").read_bytes() == b"\x00\x01\x02"
        assert not (other.path / "README.md").exists()
        assert other.changed_files() == ["README.md", "app.py", "data.bin", "pkg/new.py"]


def test_diff_includes_commits_made_in_the_workspace(repo: Path) -> None:
    with open_workspace(repo) as ws:
        (ws.path / "app.py").write_text("VALUE = 7\n")
        git(ws.path, "commit", "-q", "-am", "in workspace")
        assert ws.changed_files() == ["app.py"]
        assert "+VALUE = 7" in ws.diff()
        commit = git(ws.path, "rev-parse", "HEAD").strip()
    git(repo, "worktree", "prune")
    assert git(repo, "worktree", "list").count("\n") == 1
    # The commit made there is not on any branch of the user's repository.
    assert git(repo, "branch", "--contains", commit) == ""


def test_uncommitted_changes_are_carried_without_touching_the_user_tree(repo: Path) -> None:
    (repo / "app.py").write_text("VALUE = 'edited'\n")
    (repo / "staged.py").write_text("S = 1\n")
    git(repo, "add", "staged.py")
    (repo / "untracked.py").write_text("U = 1\n")
    (repo / "build.log").write_text("ignored\n")
    before = snapshot(repo)
    with open_workspace(repo, include_uncommitted=True) as ws:
        assert (ws.path / "app.py").read_text() == "VALUE = 'edited'\n"
        assert (ws.path / "staged.py").read_text() == "S = 1\n"
        assert (ws.path / "untracked.py").read_text() == "U = 1\n"
        assert not (ws.path / "build.log").exists()
        assert ws.changed_files() == ["app.py", "staged.py", "untracked.py"]
    assert snapshot(repo) == before
    with open_workspace(repo) as clean:
        assert (clean.path / "app.py").read_text() == "VALUE = 2\n"
        assert not (clean.path / "untracked.py").exists()


def test_a_patch_that_does_not_apply_changes_nothing(repo: Path) -> None:
    bad = "--- a/app.py\n+++ b/app.py\n@@ -1 +1 @@\n-VALUE = 999\n+VALUE = 0\n"
    with open_workspace(repo) as ws:
        with pytest.raises(InputError, match="does not apply"):
            ws.apply_patch(bad)
        assert ws.changed_files() == []
        ws.apply_patch("")
        assert ws.diff() == ""


def test_bad_inputs_are_clear_errors(tmp_path: Path, repo: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        open_workspace(tmp_path / "missing")
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(InputError, match="not a git repository"):
        open_workspace(plain)
    with pytest.raises(InputError, match="not a commit"):
        open_workspace(repo, "no-such-branch")
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    with pytest.raises(InputError, match="no commits"):
        open_workspace(empty)
    assert git(repo, "worktree", "list").count("\n") == 1


def test_close_is_idempotent_and_a_closed_workspace_refuses_work(repo: Path) -> None:
    ws = open_workspace(repo)
    ws.close()
    ws.close()
    with pytest.raises(InputError, match="closed"):
        ws.diff()
