"""What is in a repository's working tree, as cheaply as git can tell.

Tracked files whose working-tree copy matches the index are identified by the blob id git already stored, so a
no-op re-index costs about one `git status`: no file is read. Only modified and untracked files are hashed (as
git blob ids, so a file that is later committed unchanged keeps its id and is not re-indexed).
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from vibe.errors import InputError

# Paths whose content is someone else's code or machine output: indexing them drowns the repository's own code.
_VENDORED_DIRS = frozenset(
    {
        "node_modules", "vendor", "_vendor", "vendored", "_vendored", "third_party", "third-party", "thirdparty",
        "bower_components",
        ".venv", "venv", "site-packages", "__pycache__", ".tox", ".mypy_cache", ".pytest_cache",
        ".ruff_cache", ".git", ".hg", ".svn", "jspm_packages",
    }
)
_GENERATED_DIRS = frozenset({"dist", "build", "out", "target", ".next", ".nuxt", "coverage", "__generated__"})
_GENERATED_NAME = re.compile(
    r"""(?ix)
    ( \.min\.(js|css|mjs)$ | \.bundle\.js$ | \.map$ | _pb2(_grpc)?\.pyi?$ | \.pb\.go$ | \.pb\.(cc|h)$
    | _generated\.\w+$ | \.g\.dart$ | \.designer\.cs$
    | ^(package-lock\.json|yarn\.lock|pnpm-lock\.yaml|poetry\.lock|uv\.lock|Cargo\.lock|Gemfile\.lock
        |composer\.lock|go\.sum|Pipfile\.lock|bun\.lockb|npm-shrinkwrap\.json)$ )
    """
)
# Extensions that are never text: skipped without being opened.
_BINARY_EXT = frozenset(
    """png jpg jpeg gif bmp ico icns tif tiff webp psd svgz heic avif mp3 mp4 m4a wav ogg oga flac aac mov avi mkv
    webm wmv pdf zip gz tgz bz2 xz zst 7z rar tar jar war ear whl egg so dylib dll exe bin o a lib obj pyc pyo pyd
    class dex apk ipa woff woff2 ttf otf eot db sqlite sqlite3 parquet arrow feather npy npz pkl pickle h5 hdf5
    onnx pt pth ckpt safetensors gguf iso dmg img dat wasm""".split()  # noqa: SIM905 - a word list reads better as text
)


@dataclass(frozen=True, slots=True)
class Repository:
    """A git repository to index.

    Attributes:
        root: the working tree's top directory.
        git_dir: its git directory (per worktree), where the default store lives.
    """

    root: Path
    git_dir: Path


def _git(root: Path, *args: str) -> bytes:
    try:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, check=False)
    except FileNotFoundError as exc:
        raise InputError("git is not installed: indexing needs the `git` command on PATH") from exc
    if proc.returncode != 0:
        message = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise InputError(f"git {args[0]} failed in {root}: {message[-1] if message else 'no message'}")
    return proc.stdout


def open_repository(path: Path) -> Repository:
    """Find the git repository that contains `path`.

    Raises:
        InputError: `path` does not exist, is not a directory, or is not inside a git working tree.
    """
    path = path.expanduser()
    if not path.exists():
        raise InputError(f"{path} does not exist")
    if not path.is_dir():
        raise InputError(f"{path} is not a directory: index a repository's directory")
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "--show-toplevel", "--absolute-git-dir"],
            cwd=path,
            capture_output=True,
            check=False,
        )
    except FileNotFoundError as exc:
        raise InputError("git is not installed: indexing needs the `git` command on PATH") from exc
    lines = proc.stdout.decode("utf-8", "surrogateescape").splitlines()
    if proc.returncode != 0 or len(lines) != 2:
        raise InputError(f"{path} is not inside a git repository: run `git init` there first")
    return Repository(root=Path(lines[0]), git_dir=Path(lines[1]))


def find_repository(path: Path) -> Repository:
    """Like `open_repository`, without running git when `path` lies in an ordinary working tree.

    Searches and repo maps call this on every request: walking up to the `.git` entry costs microseconds where
    `git rev-parse` costs milliseconds. Anything unusual (no `.git` found, a `.git` file that is not a plain
    `gitdir:` pointer) is left to git itself.
    """
    start = path.expanduser()
    if start.is_dir():
        current = start.resolve()
        for directory in (current, *current.parents):
            marker = directory / ".git"
            if marker.is_dir() and (marker / "HEAD").is_file():
                return Repository(root=directory, git_dir=marker)
            if marker.is_file():
                text = marker.read_text("utf-8", "replace").strip()
                if text.startswith("gitdir:"):
                    git_dir = (directory / text[len("gitdir:") :].strip()).resolve()
                    if (git_dir / "HEAD").is_file():
                        return Repository(root=directory, git_dir=git_dir)
                break
            if marker.exists():
                break
    return open_repository(path)


def list_files(repo: Repository) -> dict[str, str | None]:
    """Every file git does not ignore, mapped to its blob id, or None where the working tree must be hashed.

    Submodules are left out (they are repositories of their own). Symlinks are listed with their blob id and
    skipped later: their target may lie outside the repository.
    """
    files: dict[str, str | None] = {}
    for record in _git(repo.root, "ls-files", "-s", "-z").split(b"\0"):
        if not record:
            continue
        meta, _, raw_path = record.partition(b"\t")
        mode, blob, stage = meta.split(b" ")
        path = raw_path.decode("utf-8", "surrogateescape")
        if mode == b"160000":
            continue
        # A merge conflict lists several stages; the working tree holds what counts.
        files[path] = None if stage != b"0" else ("link:" if mode == b"120000" else "") + blob.decode()
    # -t tags each path: C modified, R deleted, ? untracked. `ls-files` compares stat data first, so this stays
    # as cheap as `git status` and never takes the index lock.
    deleted: set[str] = set()
    for record in _git(repo.root, "ls-files", "-z", "-t", "-m", "-d", "-o", "--exclude-standard").split(b"\0"):
        if len(record) < 3:
            continue
        tag, path = record[:1], record[2:].decode("utf-8", "surrogateescape")
        if tag == b"R":
            deleted.add(path)
        elif tag in (b"C", b"?") and not (files.get(path) or "").startswith("link:"):
            files[path] = None
    for path in deleted:
        files.pop(path, None)
    return files


def skip_reason_for_path(path: str) -> str | None:
    """Why a file is skipped from its path alone (`vendored`, `generated`, `binary`), or None."""
    pure = PurePosixPath(path)
    parts = pure.parts[:-1]
    if any(part in _VENDORED_DIRS for part in parts):
        return "vendored"
    if any(part in _GENERATED_DIRS for part in parts) or _GENERATED_NAME.search(pure.name):
        return "generated"
    if pure.suffix[1:].lower() in _BINARY_EXT:
        return "binary"
    return None


def blob_id(data: bytes) -> str:
    """The id git gives a blob with this content (`git hash-object`)."""
    digest = hashlib.sha1(b"blob %d\0" % len(data), usedforsecurity=False)
    digest.update(data)
    return digest.hexdigest()
