"""Workspaces are real git worktrees of real repositories made in tmp_path, and leave nothing behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tasks.safe_git import Git, git_env
from tasks.workspace import ChangeSet, build_change_tree, change_patch, collect_leftovers, open_workspace
from tests.tasks.hostile import CANARIES, fired, plant, prove_live
from vibe.errors import InputError
from vibe.scratch import OWNER_FILE


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


def test_the_tree_holds_no_git_metadata_and_nothing_is_registered_in_the_repo(repo: Path) -> None:
    before = snapshot(repo)
    with open_workspace(repo) as ws:
        assert not (ws.path / ".git").exists()
        assert sorted(p.name for p in ws.path.iterdir()) == [".gitignore", "README.md", "app.py"]
        # git run inside the tree finds no repository: nothing there leads back to the user's.
        proc = subprocess.run(["git", "rev-parse", "--git-dir"], cwd=ws.path, capture_output=True, text=True,
                              env={**os.environ, "GIT_CEILING_DIRECTORIES": str(ws.path.parent.parent)})
        assert proc.returncode != 0
        assert git(repo, "worktree", "list").count("\n") == 1
        assert snapshot(repo) == before
        assert ws.changed_files() == []


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


# --- hostile trees: nothing a test writes into the tree runs on the host -----------------------------------

@pytest.fixture
def canaries(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    return CANARIES


@pytest.mark.parametrize("variant", ["gitfile", "gitdir"])
def test_a_hostile_git_in_the_tree_never_runs(
    repo: Path, tmp_path: Path, canaries: dict[str, str], variant: str
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    with open_workspace(repo) as ws:
        (ws.path / "app.py").write_text("VALUE = 'edited'\n")
        plant(ws.path, markers, variant=variant, objects=repo / ".git" / "objects")
        # The plant is live: git that discovers the tree's `.git` runs it, with the secrets in its environment.
        assert set(prove_live(ws.path, markers)) >= {"ANTHROPIC_API_KEY", "REDIS_URL"}

        changed = ws.changed_files()
        patch = ws.diff()
        ws.apply_patch("--- a/README.md\n+++ b/README.md\n@@ -1 +1 @@\n-# project\n+# patched\n")
        tree = build_change_tree(repo, ws.base_commit, {"app.py": "VALUE = 'edited'\n"})
        ledger_patch = change_patch(repo, ws.base_commit, tree)
        assert fired(markers) == []
        assert "app.py" in changed
        assert ".gitattributes" in changed
        assert not any(name == ".git" or name.startswith(".git/") for name in changed)
        assert "+VALUE = 'edited'" in patch
        assert "+VALUE = 'edited'" in ledger_patch
        assert (ws.path / "README.md").read_text() == "# patched\n"
        # The export of the hostile tree's content is byte-exact: no filter rewrote what was hashed.
        assert "+* filter=evil diff=evil" in patch
    assert fired(markers) == []


def test_a_filter_the_user_configured_is_not_run_on_a_hostile_tree(
    repo: Path, tmp_path: Path, canaries: dict[str, str]
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    script = tmp_path / "user-filter"
    script.write_text(f"#!/bin/sh\nenv > '{markers}/user-filter.'$$'.env'\ncat\n")
    script.chmod(0o755)
    # A user's own filter (as git-lfs installs one): a hostile tree's attributes must not be able to route
    # its files through it.
    git(repo, "config", "filter.userfilter.clean", str(script))
    git(repo, "config", "filter.userfilter.smudge", str(script))
    with open_workspace(repo) as ws:
        (ws.path / ".gitattributes").write_text("* filter=userfilter\n")
        (ws.path / "app.py").write_text("VALUE = 5\n")
        assert ws.changed_files() == [".gitattributes", "app.py"]
        assert "+VALUE = 5" in ws.diff()
        ws.apply_patch("--- a/app.py\n+++ b/app.py\n@@ -1 +1 @@\n-VALUE = 5\n+VALUE = 6\n")
        change_patch(repo, ws.base_commit, build_change_tree(repo, ws.base_commit, {"app.py": "VALUE = 6\n"}))
    assert fired(markers) == []


def test_git_commands_get_a_minimal_environment_and_the_safe_overrides(canaries: dict[str, str]) -> None:
    runner = Git(git_dir=Path("/nonexistent"), work_tree=Path("/tmp"))
    for env in (git_env(), git_env(remote=True), runner.env(), runner.env(remote=True)):
        assert not set(env) & set(canaries)
        assert not set(env.values()) & set(canaries.values())
        assert not any(name.startswith("PREFECT_") for name in env)
        assert env["GIT_TERMINAL_PROMPT"] == "0"
        assert env["GIT_CONFIG_NOSYSTEM"] == "1"
    argv = runner.argv(["diff"])
    assert argv[:3] == ["git", "--git-dir=/nonexistent", "--work-tree=/tmp"]
    for setting in ("core.fsmonitor=false", "core.hooksPath=/dev/null", "core.untrackedCache=false",
                    "diff.external=", "core.pager=cat"):
        assert setting in argv


def test_a_symlinked_directory_is_not_followed(repo: Path, tmp_path: Path) -> None:
    (repo / "pkg").mkdir()
    (repo / "pkg" / "mod.py").write_text("M = 1\n")
    git(repo, "add", "pkg")
    git(repo, "commit", "-q", "-m", "pkg")
    host = tmp_path / "host-secrets"
    host.mkdir()
    (host / "mod.py").write_text("HOST SECRET\n")
    with open_workspace(repo) as ws:
        shutil.rmtree(ws.path / "pkg")
        (ws.path / "pkg").symlink_to(host)
        assert ws.changed_files() == ["pkg", "pkg/mod.py"]
        patch = ws.diff()
    assert "HOST SECRET" not in patch
    assert "new file mode 120000" in patch
    assert "deleted file mode 100644" in patch


# --- the record: tree and patch from the validated edits only ----------------------------------------------

def tree_listing(repo: Path, tree: str) -> dict[str, tuple[str, str]]:
    out = git(repo, "ls-tree", "-r", "--full-tree", tree)
    return {line.split("\t")[1]: (line.split()[0], line.split()[2].split("\t")[0]) for line in out.splitlines()}


def test_the_change_tree_is_base_plus_the_record_exactly(repo: Path) -> None:
    (repo / "run.sh").write_text("#!/bin/sh\n")
    (repo / "run.sh").chmod(0o755)
    git(repo, "add", "run.sh")
    git(repo, "commit", "-q", "-m", "script")
    base = git(repo, "rev-parse", "HEAD").strip()
    before = tree_listing(repo, base)
    changes = {"app.py": "VALUE = 'record'\n", "run.sh": "#!/bin/sh\necho hi\n", "pkg/new.py": "N = 1\n",
               "README.md": None, "never-existed.txt": None}
    tree = build_change_tree(repo, base, changes)
    after = tree_listing(repo, tree)
    assert set(after) == (set(before) - {"README.md"}) | {"pkg/new.py"}
    assert after["run.sh"][0] == "100755"
    assert after["pkg/new.py"][0] == "100644"
    assert after[".gitignore"] == before[".gitignore"]
    assert git(repo, "cat-file", "-p", after["app.py"][1]) == "VALUE = 'record'\n"
    patch = change_patch(repo, base, tree)
    with open_workspace(repo, base) as ws:
        ws.apply_patch(patch)
        assert ws.changed_files() == ["README.md", "app.py", "pkg/new.py", "run.sh"]
        assert (ws.path / "pkg" / "new.py").read_text() == "N = 1\n"
    assert ChangeSet(base_commit=base, changes=changes).to_json_dict()["changes"] == changes
    assert build_change_tree(repo, base, {}) == git(repo, "rev-parse", f"{base}^{{tree}}").strip()


@pytest.mark.parametrize("bad", ["../outside.py", "/etc/passwd", ".git/config", "a//b", "pkg/.GIT/hooks/x", ""])
def test_the_record_refuses_paths_outside_the_tree(repo: Path, bad: str) -> None:
    with pytest.raises(InputError, match="invalid path"):
        build_change_tree(repo, "HEAD", {bad: "x\n"})


def test_the_record_refuses_a_file_used_as_a_directory(repo: Path) -> None:
    with pytest.raises(InputError, match="file used as a directory"):
        build_change_tree(repo, "HEAD", {"pkg": "x\n", "pkg/mod.py": "y\n"})


# --- leftovers of dead runs --------------------------------------------------------------------------------

def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_collect_leftovers_removes_dead_runs_and_old_registered_worktrees(repo: Path, tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    markers = tmp_path / "markers"
    markers.mkdir()
    dead = scratch / "vibe-testrun-dead"
    dead.mkdir()
    (dead / OWNER_FILE).write_text(json.dumps({"pid": dead_pid(), "start": "0"}))
    live = open_workspace(repo, tmp_root=scratch)
    # An older version's workspace: a worktree registered in the repository, in a directory without an owner
    # file, from a run that died hours ago; its tree was made hostile by the tests that ran there.
    old_root = scratch / "vibe-ws-old0001"
    old_root.mkdir()
    old_tree = old_root / "project"
    git(repo, "worktree", "add", "-q", "--detach", str(old_tree), "HEAD")
    plant(old_tree, markers)
    # And one whose directory is already gone.
    gone = scratch / "vibe-ws-gone0001" / "project"
    git(repo, "worktree", "add", "-q", "--detach", str(gone), "HEAD")
    shutil.rmtree(gone.parent)
    hours_ago = time.time() - 3 * 3600
    os.utime(old_root, (hours_ago, hours_ago))
    assert git(repo, "worktree", "list").count("\n") == 3

    preview = collect_leftovers(repo, dry_run=True, tmp_root=scratch)
    assert {(p.path, p.kind, p.removed) for p in preview} == {
        (old_tree, "worktree", False), (gone, "worktree", False), (old_root, "scratch", False),
        (dead, "scratch", False)}
    assert dead.exists()
    assert old_tree.exists()

    found = collect_leftovers(repo, tmp_root=scratch)
    assert {(p.path, p.kind) for p in found} == {(old_tree, "worktree"), (gone, "worktree"), (dead, "scratch")}
    assert all(p.removed for p in found)
    assert not dead.exists()
    assert not old_root.exists()
    assert live.path.exists()
    assert git(repo, "worktree", "list").count("\n") == 1
    assert not (repo / ".git" / "worktrees").exists() or not list((repo / ".git" / "worktrees").iterdir())
    assert fired(markers) == []
    live.close()
    assert collect_leftovers(repo, tmp_root=scratch) == []
