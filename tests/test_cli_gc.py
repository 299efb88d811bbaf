"""`vibe gc` as a user runs it: a real subprocess on a real repository and a private temporary directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from vibe.scratch import OWNER_FILE, scratch_dir


def git(cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update({"GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@x.invalid", "GIT_COMMITTER_NAME": "T",
                "GIT_COMMITTER_EMAIL": "t@x.invalid"})
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def vibe(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    # TMPDIR scopes the command to this test's own scratch directories.
    env = {**os.environ, "TMPDIR": str(tmp)}
    return subprocess.run([sys.executable, "-c", "from cli import main; main()", *args],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


def test_vibe_gc_removes_dead_runs_keeps_live_ones_and_prunes_worktrees(tmp_path: Path) -> None:
    repo = tmp_path / "project"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "a.txt").write_text("a\n")
    git(repo, "add", "a.txt")
    git(repo, "commit", "-q", "-m", "one")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    finished = subprocess.Popen(["true"])
    finished.wait()
    dead = scratch / "vibe-ws-dead"
    dead.mkdir()
    (dead / OWNER_FILE).write_text(json.dumps({"pid": finished.pid, "start": "0"}))
    live = scratch_dir("vibe-testrun-", parent=scratch)  # owned by this (running) test process
    old = scratch / "vibe-ws-old" / "project"
    git(repo, "worktree", "add", "-q", "--detach", str(old), "HEAD")
    hours_ago = time.time() - 3 * 3600
    os.utime(old.parent, (hours_ago, hours_ago))

    preview = vibe("gc", "--repo", str(repo), "--dry-run", "--json", tmp=scratch)
    assert preview.returncode == 0, preview.stderr
    listed = json.loads(preview.stdout)
    assert listed["dry_run"] is True
    assert {(i["kind"], Path(i["path"]).name) for i in listed["leftovers"]} == {
        ("worktree", "project"), ("scratch", "vibe-ws-old"), ("scratch", "vibe-ws-dead")}
    assert dead.exists()

    done = vibe("gc", "--repo", str(repo), tmp=scratch)
    assert done.returncode == 0, done.stderr
    assert "removed worktree" in done.stdout
    assert not dead.exists()
    assert not old.parent.exists()
    assert live.exists()
    assert git(repo, "worktree", "list").count("\n") == 1

    again = vibe("gc", "--json", tmp=scratch)
    assert json.loads(again.stdout) == {"dry_run": False, "leftovers": []}

