"""Disposable workspaces without git metadata, and the pipeline's own record of the edits it validated.

Contract:

- **A workspace holds no git metadata.** `open_workspace` exports the commit into a scratch directory
  (`vibe.scratch.scratch_dir("vibe-ws-")`): `root/<repo name>` is the tree, `root/index` a private index and
  `root/git` a git dir of the workspace's own (its objects are the user's, through an alternate; its config is
  empty). The export is `read-tree` + `checkout-index` into the empty tree with the user's git dir and config
  (the user's repository is trusted, so LFS and other smudge filters work); nothing is registered in the user's
  repository (no `git worktree add`), so a killed run leaves only a scratch directory, which the next run's
  `collect_leftovers` (or `vibe gc`) removes.
- **Nothing in the tree steers git.** Untrusted code (model edits, tests) may write anything into the tree,
  including a `.git` file or directory and `.gitattributes`. Every later git command names its git dir
  explicitly (`tasks.safe_git`), so no `.git` in the tree is ever followed; those that read the tree use the
  workspace's own git dir with no user config (`isolated`), so no filter, diff driver, fsmonitor or hook that a
  hostile tree names exists. `diff()` and `changed_files()` do not let git read file contents at all: files are
  compared with the base by hashing their bytes here (symlinks as links, never followed, nor a path under a
  symlinked directory); the patch is made with plumbing (`hash-object --no-filters`, a temporary index,
  `write-tree`, `diff-tree --no-ext-diff --no-textconv`) into the workspace's own object store.
- **The patch and the pull request come from the record, not the tree.** `ChangeSet` (base commit + path ->
  new text, None = delete) is what the pipeline's apply step validated; `build_change_tree` makes its tree
  object on the user's repository with plumbing only (it never reads a workspace) and `change_patch` its patch.
  Files a test run left in the tree (a rewritten CI workflow, a copied secret) are in neither.

Uncommitted changes can be carried over (`include_uncommitted=True`): tracked edits (staged or not) are copied
as a binary patch and untracked files that git does not ignore are copied as files, read from the user's own
(trusted) tree with read-only commands, so the user's index and working tree are untouched.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, TracebackType

from tasks.safe_git import Git, GitCommandError, UserRepo, find_user_repo
from vibe.errors import InputError
from vibe.scratch import collect_abandoned, scratch_dir

__all__ = [
    "ChangeSet",
    "GitCommandError",
    "Leftover",
    "Workspace",
    "build_change_tree",
    "change_patch",
    "collect_leftovers",
    "open_workspace",
]

_PREFIX = "vibe-ws-"
_DIFF_FLAGS = ("--binary", "--no-color", "--no-ext-diff", "--no-textconv", "--no-renames")
# A blob as the record and the tree describe it: (mode, content).
_Blob = tuple[str, bytes]


# --- the record of validated edits -------------------------------------------------------------------------

@dataclass(frozen=True)
class ChangeSet:
    """The edits the pipeline validated, against the commit they were made on.

    Attributes:
        base_commit: the full sha of the commit the edits apply to (`Workspace.base_commit`).
        changes: relative POSIX path -> the file's complete new text (None: the file is deleted).
    """

    base_commit: str
    changes: Mapping[str, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "changes", MappingProxyType(dict(self.changes)))

    def with_changes(self, more: Mapping[str, str | None]) -> ChangeSet:
        """This record with `more` on top (a later edit of a path replaces the earlier one)."""
        return ChangeSet(base_commit=self.base_commit, changes={**self.changes, **more})

    def to_json_dict(self) -> dict[str, object]:
        """`{"base_commit", "changes"}`, for journals and Prefect parameters."""
        return {"base_commit": self.base_commit, "changes": dict(self.changes)}

    @classmethod
    def from_json_dict(cls, data: Mapping[str, object]) -> ChangeSet:
        """The inverse of `to_json_dict`."""
        changes = data.get("changes") or {}
        if not isinstance(changes, Mapping):
            raise InputError("a change record's `changes` must be an object of path -> text or null")
        return cls(base_commit=str(data["base_commit"]), changes={str(k): v for k, v in changes.items()})


def _check_path(path: str) -> None:
    parts = path.split("/")
    bad = (
        not path
        or path.startswith("/")
        or "\0" in path
        or any(part in ("", ".", "..") for part in parts)
        or any(part.lower() == ".git" for part in parts)
    )
    if bad:
        raise InputError(f"invalid path in the change record: {path!r} (a relative POSIX path without `.`, `..`, "
                         "empty components or `.git` is expected)")


def _check_record(changes: Mapping[str, str | None]) -> None:
    kept = {path for path, text in changes.items() if text is not None}
    for path in changes:
        _check_path(path)
    for path in kept:
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        while parent:
            if parent in kept:
                raise InputError(f"the change record writes both {parent!r} and {path!r} (a file used as a directory)")
            parent = parent.rsplit("/", 1)[0] if "/" in parent else ""


def _record_blobs(base: Mapping[str, str], changes: Mapping[str, str | None]) -> dict[str, _Blob | None]:
    blobs: dict[str, _Blob | None] = {}
    for path, text in changes.items():
        if text is None:
            blobs[path] = None
        else:
            mode = "100755" if base.get(path) == "100755" else "100644"  # an edit keeps the executable bit
            blobs[path] = (mode, text.encode("utf-8", "surrogateescape"))
    return blobs


def _write_blobs(git: Git, blobs: Mapping[str, _Blob | None]) -> dict[str, tuple[str, str] | None]:
    written: dict[str, tuple[str, str] | None] = {}
    for path, blob in blobs.items():
        if blob is None:
            written[path] = None
        else:
            # --no-filters: the bytes are stored as given, no attribute or config can transform them.
            written[path] = (blob[0], git.out("hash-object", "-w", "--no-filters", "--stdin", input_bytes=blob[1]))
    return written


def _tree_with(git: Git, base_commit: str, entries: Mapping[str, tuple[str, str] | None], scratch: Path) -> str:
    """The tree of `base_commit` with `entries` (path -> (mode, blob sha), None = removed), via a temp index."""
    index = scratch / "change-index"
    indexed = git.with_index(index)
    try:
        indexed.run("read-tree", f"{base_commit}^{{tree}}")
        if entries:
            zero = "0" * len(base_commit)
            lines = []
            for path, entry in sorted(entries.items()):
                mode, sha = entry if entry is not None else ("0", zero)  # mode 0 removes the path
                lines.append(f"{mode} {sha}\t{path}")
            indexed.run("update-index", "-z", "--index-info",
                        input_bytes=b"".join(os.fsencode(line) + b"\0" for line in lines))
        return indexed.out("write-tree")
    finally:
        index.unlink(missing_ok=True)


def _base_modes(git: Git, base_commit: str, paths: Iterable[str]) -> dict[str, str]:
    wanted = sorted(set(paths))
    if not wanted:
        return {}
    out = git.run("--literal-pathspecs", "ls-tree", "-z", "--full-tree", base_commit, "--", *wanted).stdout
    modes: dict[str, str] = {}
    for record in out.split(b"\0"):
        if record:
            meta, _, name = record.partition(b"\t")
            modes[os.fsdecode(name)] = meta.split()[0].decode()
    return modes


def _resolve_commit(git: Git, ref: str, where: Path) -> str:
    if not ref or ref.startswith("-"):
        raise InputError(f"invalid git ref {ref!r}")
    proc = git.run("rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}", check=False)
    if proc.returncode != 0:
        if ref == "HEAD":
            raise InputError(f"{where} has no commits yet: commit something first")
        raise InputError(f"{ref!r} is not a commit in {where} (a branch, tag or sha is expected)")
    return proc.stdout.decode().strip()


def build_change_tree(repo: Path, base_commit: str, changes: Mapping[str, str | None]) -> str:
    """The tree object of `base_commit` with `changes` applied, written into the user's repository.

    Only plumbing on the user's git dir (a temporary index outside every tree: `read-tree`, `hash-object -w
    --no-filters --stdin`, `update-index --index-info`, `write-tree`); no working tree is read, so nothing a
    test run left in a workspace can reach the result. A new file gets mode 100644; an edited one keeps its
    executable bit; deleting a path the base lacks is a no-op.

    Args:
        repo: a directory in the user's repository (its working tree is not read).
        base_commit: the commit the edits were made on.
        changes: relative POSIX path -> new text (None: delete).

    Returns:
        The tree's sha.

    Raises:
        InputError: `repo` is not a repository, `base_commit` is not a commit in it, or a path is invalid.
    """
    _check_record(changes)
    user = find_user_repo(Path(repo))
    git = Git(git_dir=user.common_dir)
    base = _resolve_commit(git, base_commit, user.top)
    blobs = _record_blobs(_base_modes(git, base, changes), changes)
    with tempfile.TemporaryDirectory(prefix="vibe-tree-") as scratch:
        return _tree_with(git, base, _write_blobs(git, blobs), Path(scratch))


def change_patch(repo: Path, base_commit: str, tree: str) -> str:
    """The patch from `base_commit` to `tree` (from `build_change_tree`); `git apply` applies it on base.

    Raises:
        InputError: `repo` is not a repository or an object is missing.
    """
    git = Git(git_dir=find_user_repo(Path(repo)).common_dir)
    return _diff_tree(git, base_commit, tree)


def _diff_tree(git: Git, base_commit: str, tree: str) -> str:
    out = git.run("diff-tree", "-p", "-r", "--full-index", *_DIFF_FLAGS, f"{base_commit}^{{tree}}", tree).stdout
    return out.decode("utf-8", "replace")


# --- workspaces --------------------------------------------------------------------------------------------

def _blob_id(data: bytes, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    digest.update(b"blob %d\0" % len(data))
    digest.update(data)
    return digest.hexdigest()


def _normal_mode(mode: str) -> str:
    # Git still reads the legacy 100664 and friends; a checkout makes them 100644.
    return mode if mode in ("100755", "120000") else "100644"


def _read_tree_entry(tree: Path, rel: str) -> _Blob | None:
    """The (mode, bytes) of `rel` in `tree` as git would record it; None when it is not a file or link there.

    Nothing is followed: a symlink is read as a link, and a path under a symlinked directory counts as absent
    (the link itself is what the tree holds).
    """
    current = tree
    for part in rel.split("/")[:-1]:
        current = current / part
        try:
            if not stat.S_ISDIR(os.lstat(current).st_mode):
                return None
        except OSError:
            return None
    target = tree / rel
    try:
        info = os.lstat(target)
        if stat.S_ISLNK(info.st_mode):
            return "120000", os.fsencode(os.readlink(target))
        if not stat.S_ISREG(info.st_mode):
            return None
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    return ("100755" if info.st_mode & stat.S_IXUSR else "100644"), data


def _stat_key(path: Path) -> tuple[int, ...] | None:
    try:
        info = os.lstat(path)
    except OSError:
        return None
    # ctime cannot be set back by the code that edits the file, so a forged mtime does not hide an edit.
    return info.st_mode, info.st_size, info.st_ino, info.st_mtime_ns, info.st_ctime_ns


class Workspace:
    """A copy of `repo` at `base_commit` without git metadata, in a scratch directory outside the repository.

    Use it as a context manager or call `close()`; closing twice is harmless.

    Attributes:
        path: the tree's directory (where code is edited and tests run).
        repo: the top-level directory of the user's repository.
        base_commit: the full sha the tree was exported at; `diff()` is relative to it.
    """

    def __init__(self, *, path: Path, repo: Path, base_commit: str, root: Path) -> None:
        self.path = path
        self.repo = repo
        self.base_commit = base_commit
        self._root = root
        self._closed = False
        # Everything that reads the tree after untrusted code ran uses this: the workspace's own git dir.
        self._git = Git(git_dir=root / "git", work_tree=path, index_file=root / "index", isolated=True)
        self._algorithm = "sha1"
        self._base: dict[str, tuple[str, str]] = {}
        self._unchanged: dict[str, tuple[int, ...] | None] = {}

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace(path={str(self.path)!r}, repo={str(self.repo)!r}, base_commit={self.base_commit[:12]!r})"

    def _load_base(self, algorithm: str) -> None:
        self._algorithm = algorithm
        out = self._git.run("ls-tree", "-r", "-z", "--full-tree", self.base_commit).stdout
        for record in out.split(b"\0"):
            meta, _, name = record.partition(b"\t")
            fields = meta.split()
            if len(fields) == 3 and fields[1] == b"blob":  # submodules (commits) are not exported
                self._base[os.fsdecode(name)] = (fields[0].decode(), fields[2].decode())

    def _remember_checkout(self) -> None:
        self._unchanged = {rel: _stat_key(self.path / rel) for rel in self._base}

    def _untracked(self) -> list[str]:
        # Reads names and .gitignore files only; the isolated git dir has no fsmonitor or untracked cache.
        out = self._git.run("ls-files", "-z", "--others", "--exclude-standard").stdout
        # A trailing slash is a nested repository (a directory holding a `.git`): git records no content there.
        return sorted(n for n in (os.fsdecode(r) for r in out.split(b"\0") if r) if not n.endswith("/"))

    def _changes(self) -> dict[str, _Blob | None]:
        changed: dict[str, _Blob | None] = {}
        for rel, (mode, sha) in self._base.items():
            key = _stat_key(self.path / rel)
            if key is not None and key == self._unchanged.get(rel):
                continue
            entry = _read_tree_entry(self.path, rel)
            if entry is None:
                changed[rel] = None
            elif entry[0] != _normal_mode(mode) or _blob_id(entry[1], self._algorithm) != sha:
                changed[rel] = entry
        for rel in self._untracked():
            if rel in self._base:
                continue
            entry = _read_tree_entry(self.path, rel)
            if entry is not None:
                changed[rel] = entry
        return changed

    def diff(self) -> str:
        """Every change in the tree relative to `base_commit`, new files included, as a git patch.

        The patch applies with `git apply` (and `Workspace.apply_patch`) on a checkout of `base_commit`. Its
        objects go to the workspace's own store; the user's repository is not written.
        """
        self._check_open()
        changes = self._changes()
        if not changes:
            return ""
        bare = Git(git_dir=self._git.git_dir, isolated=True)
        tree = _tree_with(bare, self.base_commit, _write_blobs(bare, changes), self._root)
        return _diff_tree(bare, self.base_commit, tree)

    def changed_files(self) -> list[str]:
        """Paths (relative to the tree, `/`-separated) added, modified or deleted relative to `base_commit`."""
        self._check_open()
        return sorted(self._changes())

    def apply_patch(self, patch: str) -> None:
        """Apply a git/unified patch to the tree, all or nothing.

        Raises:
            InputError: the patch does not apply; the tree is left as it was.
        """
        self._check_open()
        if not patch.strip():
            return
        data = patch if patch.endswith("\n") else patch + "\n"
        try:
            # `git apply` checks every hunk before writing anything, so a failure changes nothing; it refuses
            # paths beyond a symlink and under `.git`.
            self._git.run("apply", "--binary", "--whitespace=nowarn", input_bytes=data.encode())
        except GitCommandError as exc:
            raise InputError(f"the patch does not apply to {self.base_commit[:12]}: {exc}") from exc

    def close(self) -> None:
        """Remove the scratch directory (tree, private index, own git dir); the user's repository is untouched."""
        if self._closed:
            return
        self._closed = True
        shutil.rmtree(self._root, ignore_errors=True)

    def _check_open(self) -> None:
        if self._closed:
            raise InputError(f"workspace {self.path} is closed")


def _own_git_dir(root: Path, user: UserRepo, base: str, algorithm: str) -> None:
    """A git dir of the workspace's own: the user's objects through an alternate, and a config of ours only."""
    git_dir = root / "git"
    (git_dir / "objects" / "info").mkdir(parents=True)
    (git_dir / "refs").mkdir()
    (git_dir / "info").mkdir()
    (git_dir / "HEAD").write_text(base + "\n", encoding="utf-8")
    (git_dir / "objects" / "info" / "alternates").write_text(f"{user.common_dir / 'objects'}\n", encoding="utf-8")
    config = "[core]\n\trepositoryformatversion = 1\n\tbare = false\n"
    if algorithm != "sha1":
        config += f"[extensions]\n\tobjectformat = {algorithm}\n"
    (git_dir / "config").write_text(config, encoding="utf-8")
    exclude = user.common_dir / "info" / "exclude"
    if exclude.is_file():
        shutil.copyfile(exclude, git_dir / "info" / "exclude")


def _copy_uncommitted(user: UserRepo, export: Git, dest: Path) -> None:
    # Tracked changes (staged and unstaged) relative to HEAD, read from the user's trusted tree without
    # touching its index.
    mine = user.git(work_tree=True)
    patch = mine.run("diff", *_DIFF_FLAGS, "HEAD").stdout
    if patch.strip():
        try:
            export.run("apply", "--binary", "--whitespace=nowarn", input_bytes=patch)
        except GitCommandError as exc:
            raise InputError(f"the uncommitted changes of {user.top} do not apply to the requested ref: {exc}") \
                from exc
    untracked = mine.run("ls-files", "-z", "--others", "--exclude-standard").stdout
    for raw in untracked.split(b"\0"):
        if not raw:
            continue
        name = os.fsdecode(raw)
        source = user.top / name
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
    """Export `ref` of `repo` into a new scratch directory: a tree without git metadata.

    Args:
        repo: a directory inside a git repository (its top level is used).
        ref: a branch, tag, sha or any git revision naming a commit.
        include_uncommitted: also carry the repository's uncommitted changes: tracked edits and untracked files
            that git does not ignore (meant for `ref="HEAD"`).
        tmp_root: where the scratch directory is made (default: the system's temporary directory). It must be
            outside the repository.

    Returns:
        The open workspace; close it (or use `with`) to remove every trace of it.

    Raises:
        InputError: `repo` is missing or not a git repository, `ref` names no commit, or the uncommitted
            changes do not apply to `ref`.
    """
    user = find_user_repo(Path(repo).expanduser())
    user_git = user.git()
    base = _resolve_commit(user.git(work_tree=True), ref, user.top)
    algorithm = user_git.out("rev-parse", "--show-object-format")
    root = scratch_dir(_PREFIX, parent=tmp_root)
    if root == user.top or user.top in root.parents:
        shutil.rmtree(root, ignore_errors=True)
        raise InputError(f"the workspace directory must be outside the repository {user.top}")
    path = root / (user.top.name or "repo")
    workspace = Workspace(path=path, repo=user.top, base_commit=base, root=root)
    try:
        path.mkdir()
        _own_git_dir(root, user, base, algorithm)
        # The one command that writes the tree runs with the user's config (smudge filters, LFS), into an empty
        # directory: nothing untrusted exists yet.
        export = Git(git_dir=user.common_dir, work_tree=path, index_file=root / "index")
        export.run("read-tree", base)
        export.run("checkout-index", "--all", "--force")
        workspace._load_base(algorithm)
        workspace._remember_checkout()
        if include_uncommitted:
            _copy_uncommitted(user, export, path)
    except BaseException:
        workspace.close()
        raise
    return workspace


# --- leftovers of runs that died ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Leftover:
    """Something a dead run left behind (removed unless it was a dry run).

    Attributes:
        path: the scratch directory, or the directory of a registered worktree.
        kind: `scratch` (a `vibe-*` scratch directory) or `worktree` (a worktree older versions registered in
            the user's repository).
        removed: whether it is gone now.
    """

    path: Path
    kind: str
    removed: bool


def _registered_worktrees(git: Git) -> list[Path]:
    out = git.run("worktree", "list", "--porcelain", check=False).stdout.decode(errors="surrogateescape")
    return [Path(line[len("worktree "):]) for line in out.splitlines() if line.startswith("worktree ")]


def collect_leftovers(
    repo: Path | None = None, *, dry_run: bool = False, tmp_root: Path | None = None
) -> list[Leftover]:
    """Remove what dead runs left: abandoned scratch directories and, in `repo`, the worktrees they registered.

    Called at the start of every pipeline run and by `vibe gc`. A scratch directory whose owner process still
    runs is kept. Worktrees are those older versions registered under a `vibe-ws-*` directory: removed
    (`git worktree remove --force --force`) when that directory is abandoned, forgotten (`git worktree prune`)
    when it is gone.

    Args:
        repo: the user's repository to prune worktrees of; None: scratch directories only.
        dry_run: only report what would be removed.
        tmp_root: where scratch directories live (default: the system's temporary directory).

    Raises:
        InputError: `repo` is not a git repository.
    """
    found: list[Leftover] = []
    git: Git | None = None
    if repo is not None:
        git = Git(git_dir=find_user_repo(Path(repo).expanduser()).common_dir)
        abandoned_roots: dict[Path, set[Path]] = {}
        for tree in _registered_worktrees(git):
            root = tree.parent
            if not root.name.startswith(_PREFIX):
                continue
            if not tree.exists():
                found.append(Leftover(path=tree, kind="worktree", removed=not dry_run))
                continue
            parent = root.parent.resolve()
            if parent not in abandoned_roots:
                abandoned_roots[parent] = {a.path.resolve() for a in collect_abandoned(parent, dry_run=True)}
            if root.resolve() not in abandoned_roots[parent]:
                continue
            if not dry_run:
                # Forced twice: also a locked worktree, and no `status` runs in a tree untrusted code touched.
                git.run("worktree", "remove", "--force", "--force", str(tree), check=False)
                shutil.rmtree(root, ignore_errors=True)
            found.append(Leftover(path=tree, kind="worktree", removed=not dry_run and not tree.exists()))
    for item in collect_abandoned(tmp_root, dry_run=dry_run):
        found.append(Leftover(path=item.path, kind="scratch", removed=item.removed))
    if git is not None and not dry_run:
        git.run("worktree", "prune", check=False)
    return found
