"""Disposable workspaces: a detached git worktree of the user's repository at a given ref.

Everything that changes files (generated code, test runs, commits for a pull request) happens in a workspace,
never in the user's working tree. A workspace lives in a temporary directory outside the repository and is
removed completely on close: the worktree directory, its metadata under `.git/worktrees/` and the temporary
directory around it.

Uncommitted changes can be carried over (`include_uncommitted=True`): tracked edits (staged or not) are copied
as a binary patch and untracked files that git does not ignore are copied as files. Reading them uses only
read-only git commands, so the user's index and working tree are untouched.

New files are diffed with `git diff --no-index`, which writes nothing into the user's object database.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from vibe.errors import InputError

__all__ = ["Workspace", "open_workspace"]

# Hooks of the user's repository must not run for our own git calls (a post-checkout hook on `worktree add`).
_GIT_CONFIG = ("-c", "core.hooksPath=/dev/null", "-c", "advice.detachedHead=false", "-c", "core.quotePath=false")


class GitCommandError(InputError):
    """A git command on a workspace failed; the message carries git's own words."""


def _git(
    cwd: Path, args: Sequence[str], *, input_bytes: bytes | None = None, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    # Never ask for credentials or open an editor from a background worker.
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GIT_EDITOR"] = "true"
    proc = subprocess.run(
        ["git", *_GIT_CONFIG, *args],
        cwd=cwd,
        input=input_bytes,
        capture_output=True,
        env=env,
        check=False,
    )
    if check and proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip() or proc.stdout.decode(errors="replace").strip()
        raise GitCommandError(f"git {args[0]} failed in {cwd}: {message}")
    return proc


class Workspace:
    """A detached git worktree of `repo` at `base_commit`, in a temporary directory outside the repository.

    Use it as a context manager or call `close()`; closing twice is harmless.

    Attributes:
        path: the worktree's directory (where code is edited and tests run).
        repo: the top-level directory of the user's repository.
        base_commit: the full sha the worktree was checked out at; `diff()` is relative to it.
    """

    def __init__(self, *, path: Path, repo: Path, base_commit: str, root: Path) -> None:
        self.path = path
        self.repo = repo
        self.base_commit = base_commit
        self._root = root
        self._closed = False

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace(path={str(self.path)!r}, repo={str(self.repo)!r}, base_commit={self.base_commit[:12]!r})"

    def _untracked(self) -> list[str]:
        out = _git(self.path, ["ls-files", "-z", "--others", "--exclude-standard"]).stdout
        return sorted(n for n in out.decode(errors="surrogateescape").split("\0") if n)

    def diff(self) -> str:
        """Every change in the workspace relative to `base_commit`, new files included, as a git patch.

        Committed changes in the workspace count too. The patch applies with `git apply` (and
        `Workspace.apply_patch`) on a checkout of `base_commit`.
        """
        self._check_open()
        flags = ["--binary", "--no-color", "--no-ext-diff", "--no-renames"]
        parts = [_git(self.path, ["diff", *flags, self.base_commit]).stdout]
        # `--no-index` against /dev/null diffs a new file without adding it to any index or object database.
        for name in self._untracked():
            proc = _git(self.path, ["diff", *flags, "--no-index", "--", "/dev/null", name], check=False)
            if proc.returncode not in (0, 1):
                raise GitCommandError(f"git diff failed for {name}: {proc.stderr.decode(errors='replace').strip()}")
            parts.append(proc.stdout)
        return b"".join(parts).decode(errors="replace")

    def changed_files(self) -> list[str]:
        """Paths (relative to the workspace, `/`-separated) added, modified or deleted relative to `base_commit`."""
        self._check_open()
        out = _git(self.path, ["diff", "--name-only", "-z", "--no-renames", self.base_commit]).stdout
        tracked = {n for n in out.decode(errors="surrogateescape").split("\0") if n}
        return sorted(tracked | set(self._untracked()))

    def apply_patch(self, patch: str) -> None:
        """Apply a git/unified patch to the workspace, all or nothing.

        Raises:
            InputError: the patch does not apply; the workspace is left as it was.
        """
        self._check_open()
        if not patch.strip():
            return
        data = patch if patch.endswith("\n") else patch + "\n"
        try:
            # `git apply` checks every hunk before writing anything, so a failure changes nothing.
            _git(self.path, ["apply", "--binary", "--whitespace=nowarn"], input_bytes=data.encode())
        except GitCommandError as exc:
            raise InputError(f"the patch does not apply to {self.base_commit[:12]}: {exc}") from exc

    def close(self) -> None:
        """Remove the worktree, its metadata in the repository and the temporary directory."""
        if self._closed:
            return
        self._closed = True
        # Double --force also removes a worktree that is locked or has untracked and modified files.
        _git(self.repo, ["worktree", "remove", "--force", "--force", str(self.path)], check=False)
        shutil.rmtree(self._root, ignore_errors=True)
        _git(self.repo, ["worktree", "prune"], check=False)

    def _check_open(self) -> None:
        if self._closed:
            raise InputError(f"workspace {self.path} is closed")


def _resolve_repo(repo: Path) -> Path:
    path = Path(repo).expanduser()
    if not path.exists():
        raise InputError(f"{path} does not exist")
    if not path.is_dir():
        raise InputError(f"{path} is not a directory")
    proc = _git(path, ["rev-parse", "--show-toplevel"], check=False)
    if proc.returncode != 0:
        raise InputError(f"{path} is not a git repository (run `git init` and commit, or pass a repository path)")
    return Path(proc.stdout.decode().strip()).resolve()


def _resolve_ref(repo: Path, ref: str) -> str:
    if not ref or ref.startswith("-"):
        raise InputError(f"invalid git ref {ref!r}")
    proc = _git(repo, ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"], check=False)
    if proc.returncode != 0:
        if ref == "HEAD":
            raise InputError(f"{repo} has no commits yet: commit something first")
        raise InputError(f"{ref!r} is not a commit in {repo} (a branch, tag or sha is expected)")
    return proc.stdout.decode().strip()


def _copy_uncommitted(repo: Path, dest: Path) -> None:
    # Tracked changes (staged and unstaged) relative to HEAD, read without touching the user's index.
    patch = _git(repo, ["diff", "--binary", "--no-color", "--no-ext-diff", "HEAD"]).stdout
    if patch.strip():
        try:
            _git(dest, ["apply", "--binary", "--whitespace=nowarn"], input_bytes=patch)
        except GitCommandError as exc:
            raise InputError(f"the uncommitted changes of {repo} do not apply to the requested ref: {exc}") from exc
    untracked = _git(repo, ["ls-files", "-z", "--others", "--exclude-standard"]).stdout
    for name in untracked.decode(errors="surrogateescape").split("\0"):
        if not name:
            continue
        source = repo / name
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.unlink(missing_ok=True)
            target.symlink_to(os.readlink(source))
        elif source.is_file():
            shutil.copy2(source, target)


def open_workspace(
    repo: Path, ref: str = "HEAD", *, include_uncommitted: bool = False, tmp_root: Path | None = None
) -> Workspace:
    """Check out `ref` of `repo` as a detached worktree in a new temporary directory.

    Args:
        repo: a directory inside a git repository (its top level is used).
        ref: a branch, tag, sha or any git revision naming a commit.
        include_uncommitted: also carry the repository's uncommitted changes: tracked edits and untracked files
            that git does not ignore (meant for `ref="HEAD"`).
        tmp_root: where the temporary directory is made (default: the system's temporary directory). It must be
            outside the repository.

    Returns:
        The open workspace; close it (or use `with`) to remove every trace of it.

    Raises:
        InputError: `repo` is missing or not a git repository, `ref` names no commit, or the uncommitted
            changes do not apply to `ref`.
    """
    top = _resolve_repo(Path(repo))
    base = _resolve_ref(top, ref)
    root = Path(tempfile.mkdtemp(prefix="vibe-ws-", dir=tmp_root)).resolve()
    if root == top or top in root.parents:
        shutil.rmtree(root, ignore_errors=True)
        raise InputError(f"the workspace directory must be outside the repository {top}")
    path = root / (top.name or "repo")
    workspace = Workspace(path=path, repo=top, base_commit=base, root=root)
    try:
        _git(top, ["worktree", "add", "--detach", "--quiet", str(path), base])
        if include_uncommitted:
            _copy_uncommitted(top, path)
    except BaseException:
        workspace.close()
        raise
    return workspace
