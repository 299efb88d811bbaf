"""Apply parsed edits to a working tree safely: validate every edit first, then write, or write nothing.

An edit is *refused* (the step fails with a clear message, `UnsafeEditError`) when it would write outside the
tree or somewhere no model may write: an absolute path, a `..` component, a path through a symlink that leaves
the tree, a symlink itself, anything under `.git/`, binary content, or a file over the size cap. An edit whose
SEARCH text does not match exactly once is a *mismatch*: nothing is written and the problems go back to the
model. Either way the tree is untouched unless every edit is valid.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tasks.codegen.parser import FileEdit, SearchReplace
from vibe.errors import InputError

DEFAULT_MAX_FILE_BYTES = 1_000_000
_DRIVE = re.compile(r"^[A-Za-z]:")


class UnsafeEditError(InputError):
    """The model's reply asked for an edit that is never applied (outside the tree, `.git/`, binary, oversize).

    Attributes:
        refusals: one line per refused edit, naming the path and the reason.
    """

    def __init__(self, refusals: Sequence[str]) -> None:
        self.refusals = tuple(refusals)
        super().__init__("refused unsafe edit(s), nothing was written: " + "; ".join(self.refusals))


@dataclass(frozen=True)
class EditProblem:
    """A SEARCH/REPLACE block that could not be applied; the message is meant for the model."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class PlannedWrite:
    """The new content of one file, relative to the tree's root (POSIX form)."""

    path: str
    content: str
    created: bool


@dataclass(frozen=True)
class EditPlan:
    """What applying a reply would write, or why it cannot."""

    writes: tuple[PlannedWrite, ...]
    problems: tuple[EditProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_path(root: Path, path: str) -> tuple[str, Path] | str:
    """Validate `path` (as the model wrote it) against the tree at `root`.

    Returns:
        `(normalised relative POSIX path, absolute target)` when it is safe to write, else the refusal reason.
    """
    if not path or "\x00" in path:
        return "empty or invalid path"
    if "\\" in path:
        return "backslashes are not allowed in paths; use forward slashes"
    if path.startswith(("/", "~")) or _DRIVE.match(path):
        return "absolute paths are not allowed; use a path relative to the repository root"
    parts = [part for part in PurePosixPath(path).parts if part != "."]
    if not parts:
        return "the path names no file"
    if ".." in parts:
        return "'..' is not allowed in paths"
    if any(part.lower() == ".git" for part in parts):
        return "files under .git/ are never written"
    real_root = Path(os.path.realpath(root))
    target = real_root.joinpath(*parts)
    if target.is_symlink():
        return "the path is a symbolic link; edit the file it points to instead"
    resolved = Path(os.path.realpath(target))
    try:
        relative = resolved.relative_to(real_root)
    except ValueError:
        return "the path leads outside the repository through a symbolic link"
    if any(part.lower() == ".git" for part in relative.parts):
        return "the path leads into .git/ through a symbolic link"
    if resolved.is_dir():
        return "the path is a directory"
    if resolved.exists() and not resolved.is_file():
        return "the path is not a regular file"
    return "/".join(parts), resolved


def _content_refusal(content: str, max_bytes: int) -> str | None:
    if "\x00" in content:
        return "binary content is not allowed"
    size = len(content.encode("utf-8", errors="surrogatepass"))
    if size > max_bytes:
        return f"the new content is {size} bytes, over the cap of {max_bytes}"
    return None


def _read_text(target: Path, max_bytes: int) -> str | tuple[str] | None:
    """The file's text, None when it does not exist, or a 1-tuple holding the refusal reason."""
    if not target.exists():
        return None
    size = target.stat().st_size
    if size > max_bytes:
        return (f"the file is {size} bytes, over the cap of {max_bytes}",)
    data = target.read_bytes()
    if b"\x00" in data:
        return ("the file is binary",)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return ("the file is not UTF-8 text",)


def _rstrip_lines(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.split("\n"))


def _preview(text: str, limit: int = 240) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


class _Mismatch(Exception):
    """A block that does not match; private control flow, never escapes this module."""


def _apply_block(text: str, block: SearchReplace) -> str:
    """Apply one block to `text`; returns the new text, or raises `_Mismatch`."""
    if not block.search.strip():
        if text.strip():
            raise _Mismatch("an empty SEARCH only creates a new file; this file exists, so quote the lines to change")
        return block.replace
    count = text.count(block.search)
    if count == 1:
        return text.replace(block.search, block.replace, 1)
    if count > 1:
        raise _Mismatch(
            f"the SEARCH text matches {count} times; include more surrounding lines so it matches exactly once:\n"
            + _preview(block.search)
        )
    # Models often get trailing whitespace wrong; accept a match that differs only there, if it is unique.
    lines = text.split("\n")
    stripped_lines = [line.rstrip() for line in lines]
    wanted = _rstrip_lines(block.search.rstrip("\n")).split("\n")
    hits = [
        start for start in range(len(lines) - len(wanted) + 1) if stripped_lines[start : start + len(wanted)] == wanted
    ]
    if len(hits) == 1:
        start = hits[0]
        replacement = block.replace[:-1] if block.replace.endswith("\n") else block.replace
        new_lines = [*lines[:start], *replacement.split("\n"), *lines[start + len(wanted) :]]
        if not replacement:
            new_lines = [*lines[:start], *lines[start + len(wanted) :]]
        return "\n".join(new_lines)
    if len(hits) > 1:
        raise _Mismatch(
            f"the SEARCH text matches {len(hits)} times; include more surrounding lines so it matches exactly once:\n"
            + _preview(block.search)
        )
    raise _Mismatch(
        "the SEARCH text does not match the file exactly; copy the lines verbatim:\n" + _preview(block.search)
    )


def plan_edits(root: Path, edits: Sequence[FileEdit], *, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> EditPlan:
    """Work out what `edits` would write under `root`, without writing anything.

    Edits of the same file apply in order, each on the result of the one before.

    Raises:
        UnsafeEditError: one or more edits are refused (every refusal is listed).
    """
    refusals: list[str] = []
    problems: list[EditProblem] = []
    pending: dict[str, PlannedWrite] = {}
    for edit in edits:
        checked = check_path(root, edit.path)
        if isinstance(checked, str):
            refusals.append(f"{edit.path!r}: {checked}")
            continue
        rel, target = checked
        previous = pending.get(rel)
        if previous is not None:
            current: str | None = previous.content
            created = previous.created
        else:
            existing = _read_text(target, max_file_bytes)
            if isinstance(existing, tuple):
                refusals.append(f"{rel!r}: {existing[0]}")
                continue
            current, created = existing, existing is None
        if edit.kind == "whole":
            new = edit.content
        else:
            new = current or ""
            try:
                if current is None and any(block.search.strip() for block in edit.blocks):
                    raise _Mismatch("the file does not exist; to create it, send its whole content")
                for block in edit.blocks:
                    new = _apply_block(new, block)
            except _Mismatch as exc:
                problems.append(EditProblem(rel, str(exc)))
                continue
        refusal = _content_refusal(new, max_file_bytes)
        if refusal is not None:
            refusals.append(f"{rel!r}: {refusal}")
            continue
        pending[rel] = PlannedWrite(path=rel, content=new, created=created)
    if refusals:
        raise UnsafeEditError(refusals)
    return EditPlan(writes=tuple(pending.values()), problems=tuple(problems))


def write_plan(root: Path, plan: EditPlan) -> tuple[str, ...]:
    """Write a plan made by `plan_edits` (each file replaced atomically); returns the paths written.

    Raises:
        InputError: the plan has problems (nothing is written then).
    """
    if plan.problems:
        raise InputError("the edits have unresolved problems; nothing was written")
    real_root = Path(os.path.realpath(root))
    written: list[str] = []
    for write in plan.writes:
        # Re-check right before writing: the tree may have changed since the plan was made.
        checked = check_path(real_root, write.path)
        if isinstance(checked, str):
            raise UnsafeEditError([f"{write.path!r}: {checked}"])
        _, target = checked
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = target.stat().st_mode & 0o7777 if target.exists() else None
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".vibe-edit-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
                fh.write(write.content)
            if mode is not None:
                os.chmod(tmp, mode)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written.append(write.path)
    return tuple(written)


def apply_edits(root: Path, edits: Sequence[FileEdit], *, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> EditPlan:
    """Validate every edit, then write them all, or write nothing.

    Returns:
        The plan; when `plan.problems` is non-empty (a SEARCH that matches zero or several times) nothing was
        written and the problems are for the model.

    Raises:
        UnsafeEditError: an edit is refused; nothing was written.
    """
    plan = plan_edits(root, edits, max_file_bytes=max_file_bytes)
    if plan.ok:
        write_plan(root, plan)
    return plan
