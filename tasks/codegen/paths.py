"""Paths as models write them, mapped onto the tree when the meaning is clear, else a problem for the model.

`resolve_path` runs before the safe-apply checks (`apply.check_path`), and never weakens them: whatever is
hostile (a `.git` component, NUL, backslashes, text that is not UTF-8) passes through unchanged so that it is
refused by name, and a mapped path is checked like any other (symbolic links, `.git`, special files).

- an absolute path inside the tree (the workspace, or one of `aliases` such as the user's repository) is
  mapped to the relative path;
- another absolute path, `~`, a drive letter or a `..` component is, with `outside="problem"`, an
  `EditProblem` `outside_tree` naming the relative path that exists, if one does;
- `<repository name>/<path>`, when that does not exist and `<path>` does, is mapped to `<path>`;
- a new file whose path ends with an existing file's path (2+ components: `src/pkg/mod.py` next to
  `pkg/mod.py`) is an `EditProblem` `path_mistake` (`create_problem`).

Decisions:
- Refuse or send back: a path outside the tree is never written either way. With `outside="refuse"` (the
  default, as before) it ends the step; the pipeline passes `outside="problem"`, since a model that writes
  `/home/me/proj/x.py` or `../x.py` made a mistake it can fix, not an attack that succeeded.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

__all__ = ["PathRules", "create_problem", "resolve_path"]

_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class PathRules:
    """How an edit's path is read.

    Attributes:
        repo_name: the repository's directory name, which models sometimes put in front of paths.
        aliases: absolute directories that stand for the tree's root (the user's repository, whose path the
            model may have seen).
        outside: what a path outside the tree is: "refuse" (`UnsafeEditError`) or "problem" (for the model).
    """

    repo_name: str | None = None
    aliases: tuple[Path, ...] = ()
    outside: Literal["refuse", "problem"] = "refuse"


def _is_hostile(path: str) -> bool:
    from tasks.codegen.apply import is_git_name

    if not path or "\x00" in path or "\\" in path:
        return True
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return any(is_git_name(part) for part in path.split("/"))


def _suffix_match(root: Path, parts: list[str]) -> str | None:
    """The longest tail of `parts` (2+ components, or the file name) naming an existing file under `root`."""
    for start in range(len(parts)):
        tail = parts[start:]
        if (len(tail) >= 2 or start == len(parts) - 1) and root.joinpath(*tail).is_file():
            return "/".join(tail)
    return None


def _outside(root: Path, path: str, why: str) -> tuple[str, str]:
    parts = [part for part in PurePosixPath(path.lstrip("~")).parts if part not in ("/", ".", "..")]
    hint = _suffix_match(root, parts) if parts else None
    message = f"{why}; paths are relative to the repository root, and nothing outside it is ever written"
    if hint is not None:
        message += f" (did you mean {hint}?)"
    return "outside_tree", message


def resolve_path(root: Path, path: str, rules: PathRules) -> tuple[str, str | None] | tuple[None, tuple[str, str]]:
    """The path to apply for `path` as written, and a note when it was mapped; or a problem `(kind, message)`.

    Args:
        root: the tree's root.
        path: the path as the model wrote it.
        rules: see `PathRules`.

    Returns:
        `(path, note or None)`, or `(None, (problem kind, message))`.
    """
    if _is_hostile(path):
        return path, None
    real_root = Path(os.path.realpath(root))
    if path.startswith("/"):
        for base in (real_root, Path(root).absolute(), *rules.aliases):
            try:
                rel = PurePosixPath(path).relative_to(PurePosixPath(base)).as_posix()
            except ValueError:
                continue
            if rel not in ("", "."):
                return _prefixed(real_root, rel, rules, note=f"{path} was read as {rel} (inside the repository)")
    if rules.outside == "problem":
        if path.startswith(("/", "~")) or _DRIVE.match(path):
            return None, _outside(real_root, path, f"{path} is an absolute path outside the repository")
        if ".." in PurePosixPath(path).parts:
            return None, _outside(real_root, path, f"{path} uses '..'")
    return _prefixed(real_root, path, rules, note=None)


def _prefixed(root: Path, path: str, rules: PathRules, *, note: str | None) -> tuple[str, str | None]:
    parts = [part for part in PurePosixPath(path).parts if part != "."]
    name = rules.repo_name
    if name and len(parts) > 1 and parts[0] == name and not root.joinpath(*parts).exists():
        rest = "/".join(parts[1:])
        if root.joinpath(*parts[1:]).exists():
            return rest, f"{path} was read as {rest} (the repository's name in front of its path)"
    return path, note


def create_problem(root: Path, rel: str) -> str | None:
    """Why creating the new file `rel` is most likely a path mistake (it ends with an existing file's path)."""
    parts = rel.split("/")
    for start in range(1, len(parts) - 1):
        tail = parts[start:]
        if Path(os.path.realpath(root)).joinpath(*tail).is_file():
            existing = "/".join(tail)
            return (
                f"{rel} does not exist, but {existing} does; edit {existing} (paths are relative to the repository "
                "root), or choose a name that is not a copy of an existing path for a new file"
            )
    return None
