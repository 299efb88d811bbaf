"""Apply parsed edits to a working tree safely: validate every edit first, then write, or write nothing.

An edit is *refused* (the step fails with a clear message, `UnsafeEditError`) when it would write outside the
tree or somewhere no model may write: an absolute path, a `..` component, a symbolic link anywhere on the way
(even one pointing inside the tree), a `.git` component at any depth and in any spelling git treats as `.git`,
a path that is not valid UTF-8, a special file (fifo, device, socket), binary content, or a file over the size
cap. An edit the file system could not carry out, or whose SEARCH text does not match exactly once, is an
`EditProblem` that goes back to the model: a file used as a directory, a name or path over the file system's
limits, a directory as the target, two edits where one uses the other's file as a directory. Either way the
tree is untouched unless every edit is valid; and when writing still fails (a full disk, a file-size limit),
every file the reply already wrote is put back, so the tree is exactly as before.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from tasks.codegen.matching import Mismatch, replace_once
from tasks.codegen.parser import FileEdit, SearchReplace, parse_reply
from tasks.codegen.paths import PathRules, create_problem, resolve_path
from tasks.codegen.wholefile import judge_whole
from vibe.errors import InputError

DEFAULT_MAX_FILE_BYTES = 1_000_000
_DRIVE = re.compile(r"^[A-Za-z]:")
# POSIX minimums are lower, but every file system a workspace lives on allows at least these.
_DEFAULT_NAME_MAX = 255
_DEFAULT_PATH_MAX = 4096
_TEMP_PREFIX = ".vibe-edit-"
_BACKUP_PREFIX = ".vibe-backup-"
# mkstemp adds 8 random characters; the temporary file must fit the path limit too.
_TEMP_NAME_BYTES = len(_TEMP_PREFIX) + 8
# Characters HFS+ ignores in names, so `.g\u200cit` is `.git` to git on macOS (git's own list).
_HFS_IGNORED = dict.fromkeys([*range(0x200C, 0x2010), *range(0x202A, 0x202F), *range(0x206A, 0x2070), 0xFEFF], None)

ProblemKind = Literal[
    "mismatch",
    "not_a_directory",
    "name_too_long",
    "path_too_long",
    "is_a_directory",
    "path_conflict",
    "write_failed",
    "outside_tree",
    "path_mistake",
    "elided",
    "not_whole",
]


class UnsafeEditError(InputError):
    """The model's reply asked for an edit that is never applied (outside the tree, `.git`, a symlink, binary).

    Attributes:
        refusals: one line per refused edit, naming the path and the reason.
    """

    def __init__(self, refusals: Sequence[str]) -> None:
        self.refusals = tuple(refusals)
        super().__init__("refused unsafe edit(s), nothing was written: " + "; ".join(self.refusals))


@dataclass(frozen=True)
class EditProblem:
    """An edit that could not be applied; the message is meant for the model.

    Attributes:
        path: the edit's path (normalised, relative to the tree's root).
        message: what is wrong and how to fix it.
        kind: `mismatch` (a SEARCH matching zero or several times, or a file that does not exist),
            `not_a_directory` (a file used as a directory), `name_too_long`, `path_too_long`,
            `is_a_directory` (a directory as the target), `path_conflict` (two edits of the reply where one
            uses the other's file as a directory), `write_failed` (the file system refused the write; every
            file of the reply was restored), `outside_tree` (an absolute or `..` path outside the tree, with
            `PathRules(outside="problem")`), `path_mistake` (a new file whose path ends with an existing
            file's), `elided` / `not_whole` (a whole-file block that is not the whole file, see `wholefile.py`).
    """

    path: str
    message: str
    kind: ProblemKind = field(default="mismatch")

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class EditWriteError(InputError):
    """Writing a valid plan failed part-way (a full disk, a file-size limit); every file was put back.

    Attributes:
        problem: the `write_failed` problem, for the model.
    """

    def __init__(self, problem: EditProblem) -> None:
        self.problem = problem
        super().__init__(f"{problem}")


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
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


def is_git_name(name: str) -> bool:
    """Whether git treats the path component `name` as `.git` on some file system (so it must never be written).

    Case-insensitive file systems fold `.GIT`; NTFS drops trailing dots and spaces, reads `git~1` as the
    short name of `.git` and `.git::$INDEX_ALLOCATION` as the directory itself; HFS+ ignores some invisible
    characters.
    """
    folded = name.translate(_HFS_IGNORED).split(":", 1)[0].rstrip(". ").casefold()
    return folded in (".git", "git~1")


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        # Missing, or not even looked up (a name over the limit): the file-system check says which.
        return None


def _walk(real_root: Path, parts: Sequence[str]) -> list[os.stat_result]:
    """`lstat` of each existing leading component of `parts`, stopping at the first missing or non-directory."""
    found: list[os.stat_result] = []
    current = real_root
    for part in parts:
        current = current / part
        info = _lstat(current)
        if info is None:
            break
        found.append(info)
        if not stat.S_ISDIR(info.st_mode):
            break
    return found


def check_path(root: Path, path: str) -> tuple[str, Path] | str:
    """Validate `path` (as the model wrote it) against the tree at `root`: the refusals only.

    What the file system itself would refuse (see `check_writable`) is a problem for the model, not a refusal.

    Returns:
        `(normalised relative POSIX path, absolute target)` when it is safe to write, else the refusal reason.
    """
    if not path or "\x00" in path:
        return "empty or invalid path"
    if "\\" in path:
        return "backslashes are not allowed in paths; use forward slashes"
    if path.startswith(("/", "~")) or _DRIVE.match(path):
        return "absolute paths are not allowed; use a path relative to the repository root"
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "the path is not valid UTF-8 text"
    parts = [part for part in PurePosixPath(path).parts if part != "."]
    if not parts:
        return "the path names no file"
    if ".." in parts:
        return "'..' is not allowed in paths"
    if any(is_git_name(part) for part in parts):
        return "files under .git/ (or named .git) are never written"
    real_root = Path(os.path.realpath(root))
    found = _walk(real_root, parts)
    for depth, info in enumerate(found):
        if stat.S_ISLNK(info.st_mode):
            link = "/".join(parts[: depth + 1])
            if depth == len(parts) - 1:
                return "the path is a symbolic link; edit the file it points to instead"
            return f"{link} is a symbolic link; edits never go through symbolic links, use the real path"
    if len(found) == len(parts):
        mode = found[-1].st_mode
        if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
            return "the path is not a regular file"
    return "/".join(parts), real_root.joinpath(*parts)


def _limit(directory: Path, name: str, default: int) -> int:
    try:
        value = os.pathconf(directory, name)
    except (OSError, ValueError):
        return default
    return value if value > 0 else default


def check_writable(root: Path, rel: str) -> EditProblem | None:
    """What the file system would refuse about writing the file `rel` (as `check_path` normalised it).

    Returns:
        A problem for the model (a file used as a directory, a name over `PC_NAME_MAX` of the nearest existing
        directory, a path over `PC_PATH_MAX`, a directory as the target), or None.
    """
    real_root = Path(os.path.realpath(root))
    parts = rel.split("/")
    found = _walk(real_root, parts)
    for depth, info in enumerate(found):
        if depth < len(parts) - 1 and not stat.S_ISDIR(info.st_mode):
            blocker = "/".join(parts[: depth + 1])
            return EditProblem(
                rel,
                f"{blocker} is a file, so it cannot hold {'/'.join(parts[depth + 1 :])}; "
                f"choose a path that does not go through {blocker}, or edit {blocker} itself",
                "not_a_directory",
            )
    if len(found) == len(parts) and stat.S_ISDIR(found[-1].st_mode):
        return EditProblem(rel, f"{rel} is a directory, not a file; name a file inside it", "is_a_directory")
    nearest = real_root.joinpath(*parts[: len(found)]) if found else real_root
    name_max = _limit(nearest, "PC_NAME_MAX", _DEFAULT_NAME_MAX)
    for part in parts[len(found) :]:
        size = len(part.encode("utf-8"))
        if size > name_max:
            return EditProblem(
                rel,
                f"the name {part[:40]}... is {size} bytes, over this file system's limit of {name_max} bytes "
                "per name; use a shorter name",
                "name_too_long",
            )
    path_max = _limit(nearest, "PC_PATH_MAX", _DEFAULT_PATH_MAX)
    target = real_root.joinpath(*parts)
    # The path and its NUL terminator must fit, and so must the temporary file written next to it.
    size = max(len(os.fsencode(target)), len(os.fsencode(target.parent)) + 1 + _TEMP_NAME_BYTES) + 1
    if size > path_max:
        return EditProblem(
            rel,
            f"the path is too long for this file system ({size} bytes in the workspace, over its limit of "
            f"{path_max}); use a shorter path",
            "path_too_long",
        )
    return None


def _conflicts(rels: Sequence[str]) -> list[EditProblem]:
    """Problems for paths of one reply where one is written as a file and another uses it as a directory."""
    files = set(rels)
    problems: list[EditProblem] = []
    for rel in rels:
        parts = rel.split("/")
        for depth in range(1, len(parts)):
            prefix = "/".join(parts[:depth])
            if prefix in files:
                problems.append(
                    EditProblem(
                        rel,
                        f"this reply also writes {prefix} as a file, so it cannot be a directory holding "
                        f"{rel}; keep only one of the two paths",
                        "path_conflict",
                    )
                )
                break
    return problems


def _content_refusal(content: str, max_bytes: int) -> str | None:
    if "\x00" in content:
        return "binary content is not allowed"
    try:
        size = len(content.encode("utf-8"))
    except UnicodeEncodeError:
        return "the new content is not valid UTF-8 text"
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


def _apply_block(text: str, block: SearchReplace) -> str:
    """Apply one block to `text`; returns the new text, or raises `Mismatch` (see `matching.replace_once`)."""
    if not block.search.strip():
        if text.strip():
            raise Mismatch("an empty SEARCH only creates a new file; this file exists, so quote the lines to change")
        return block.replace
    return replace_once(text, block.search, block.replace, hint_line=block.hint_line)


class _Planner:
    """The plan of one reply as it is built, edit by edit (see `plan_edits`)."""

    def __init__(self, root: Path, *, max_file_bytes: int, rules: PathRules, allow_shrink: bool) -> None:
        self.root = root
        self.max_file_bytes = max_file_bytes
        self.rules = rules
        self.allow_shrink = allow_shrink
        self.refusals: list[str] = []
        self.problems: list[EditProblem] = []
        self.notes: list[str] = []
        self.pending: dict[str, PlannedWrite] = {}
        # What each path held before this reply (None: missing), for the whole-file judgement.
        self.before: dict[str, str | None] = {}

    def add(self, edit: FileEdit) -> None:
        path, mapped = resolve_path(self.root, edit.path, self.rules)
        if path is None:
            assert isinstance(mapped, tuple)
            self.problems.append(EditProblem(edit.path, mapped[1], mapped[0]))  # type: ignore[arg-type]
            return
        if isinstance(mapped, str):
            self.notes.append(mapped)
        checked = check_path(self.root, path)
        if isinstance(checked, str):
            self.refusals.append(f"{edit.path!r}: {checked}")
            return
        rel, target = checked
        current = self._current(rel, target)
        if current is None or isinstance(current, EditProblem):
            if current is not None:
                self.problems.append(current)
            return
        text, created = current
        new = self._new_content(edit, rel, text)
        if new is None:
            return
        refusal = _content_refusal(new, self.max_file_bytes)
        if refusal is not None:
            self.refusals.append(f"{rel!r}: {refusal}")
            return
        self.pending[rel] = PlannedWrite(path=rel, content=new, created=created)

    def _current(self, rel: str, target: Path) -> tuple[str | None, bool] | EditProblem | None:
        """The text `rel` has at this point of the reply and whether it is new; a problem; None if refused."""
        previous = self.pending.get(rel)
        if previous is not None:
            return previous.content, previous.created
        problem = check_writable(self.root, rel)
        if problem is not None:
            return problem
        existing = _read_text(target, self.max_file_bytes)
        if isinstance(existing, tuple):
            self.refusals.append(f"{rel!r}: {existing[0]}")
            return None
        self.before.setdefault(rel, existing)
        return existing, existing is None

    def _new_content(self, edit: FileEdit, rel: str, current: str | None) -> str | None:
        """The file's text after `edit`, or None when the edit writes nothing (a problem, a quotation)."""
        if edit.kind == "whole":
            return self._whole(edit, rel, current)
        new = current or ""
        try:
            if current is None and any(block.search.strip() for block in edit.blocks):
                raise Mismatch("the file does not exist; to create it, send its whole content")
            for block in edit.blocks:
                new = _apply_block(new, block)
        except Mismatch as exc:
            self.problems.append(EditProblem(rel, str(exc)))
            return None
        return new

    def _whole(self, edit: FileEdit, rel: str, current: str | None) -> str | None:
        if current is None and rel not in self.pending:
            mistake = create_problem(self.root, rel)
            if mistake is not None:
                self.problems.append(EditProblem(rel, mistake, "path_mistake"))
                return None
        verdict = judge_whole(current, edit.content, path=rel, quoted=edit.quoted, allow_shrink=self.allow_shrink)
        if verdict.action == "problem":
            self.problems.append(EditProblem(rel, verdict.message, verdict.kind or "not_whole"))
            return None
        if verdict.action == "quote":
            self.notes.append(verdict.message)
            return None
        if verdict.action == "unchanged":
            self.notes.append(f"{rel}: the block is the file as it is; nothing to change")
            return None
        return edit.content

    def finish(self) -> EditPlan:
        if self.refusals:
            raise UnsafeEditError(self.refusals)
        problems = [*self.problems, *_conflicts(list(self.pending))]
        writes = tuple(w for w in self.pending.values() if w.created or w.content != self.before.get(w.path))
        return EditPlan(writes=writes, problems=tuple(problems), notes=tuple(self.notes))


def plan_edits(
    root: Path,
    edits: Sequence[FileEdit],
    *,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    rules: PathRules | None = None,
    allow_shrink: bool = False,
) -> EditPlan:
    """Work out what `edits` would write under `root`, without writing anything.

    Edits of the same file apply in order, each on the result of the one before. Paths are read as models
    write them (`paths.resolve_path`); a whole-file block writes only when it is the whole file
    (`wholefile.judge_whole`: a quotation changes nothing and gets a note, a fragment is a problem).

    Args:
        root: the tree.
        edits: the parsed edits.
        max_file_bytes: the cap on a file's size (old and new).
        rules: how paths are read (default: `PathRules()`, a path outside the tree is refused).
        allow_shrink: the request asks to remove code, so a much shorter whole file is plausible.

    Returns:
        The plan; its problems (for the model) are SEARCH texts that match zero or several times, what the
        file system would refuse (`check_writable`, and paths of the reply that use each other as directories),
        whole-file blocks that are not whole files, and path mistakes; its notes say what was read differently
        from how it was written (a mapped path, a quotation left alone).

    Raises:
        UnsafeEditError: one or more edits are refused (every refusal is listed).
    """
    planner = _Planner(root, max_file_bytes=max_file_bytes, rules=rules or PathRules(), allow_shrink=allow_shrink)
    for edit in edits:
        planner.add(edit)
    return planner.finish()


class _Transaction:
    """The files and directories one reply's write has touched so far, so that a failure can undo all of it.

    Writing happens in two passes: every new content goes to a temporary file next to its target first (where
    a full disk or a file-size limit shows up), and only then are the targets replaced, each old file kept
    under a hard link until the end. Undoing restores each old file from its link, deletes created files,
    temporary files and the directories made for them.
    """

    def __init__(self) -> None:
        self.made_dirs: list[Path] = []
        self.temps: dict[Path, Path] = {}
        # target -> its old file's hard link (or old bytes where links are unsupported); None: it was created.
        self.replaced: list[tuple[Path, Path | bytes | None]] = []

    def make_dirs(self, directory: Path) -> None:
        missing: list[Path] = []
        while not directory.exists():
            missing.append(directory)
            directory = directory.parent
        for path in reversed(missing):
            path.mkdir()
            self.made_dirs.append(path)

    def stage(self, target: Path, data: bytes) -> None:
        self.make_dirs(target.parent)
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=_TEMP_PREFIX)
        self.temps[target] = Path(name)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        old = _lstat(target)
        # New files get the usual 0644 (mkstemp makes 0600); edited ones keep their mode.
        os.chmod(name, stat.S_IMODE(old.st_mode) if old is not None else 0o644)

    def commit(self, target: Path) -> None:
        backup: Path | bytes | None = None
        if _lstat(target) is not None:
            link = target.with_name(_BACKUP_PREFIX + secrets.token_hex(6))
            try:
                os.link(target, link)
                backup = link
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK):
                    raise
                backup = target.read_bytes()
        try:
            os.replace(self.temps[target], target)
        except OSError:
            if isinstance(backup, Path):
                with suppress(OSError):
                    backup.unlink()
            raise
        del self.temps[target]
        self.replaced.append((target, backup))

    def finish(self) -> None:
        for _, backup in self.replaced:
            if isinstance(backup, Path):
                with suppress(OSError):
                    backup.unlink()

    def undo(self) -> list[str]:
        """Put everything back; returns what could not be undone (empty when the tree is as before)."""
        failures: list[str] = []
        for target, backup in reversed(self.replaced):
            try:
                if backup is None:
                    target.unlink()
                elif isinstance(backup, Path):
                    os.replace(backup, target)
                else:
                    target.write_bytes(backup)
            except OSError as exc:
                failures.append(f"{target.name}: {exc.strerror}")
        for temp in self.temps.values():
            with suppress(OSError):
                temp.unlink()
        for directory in reversed(self.made_dirs):
            try:
                directory.rmdir()
            except OSError as exc:
                failures.append(f"{directory.name}/: {exc.strerror}")
        return failures


def write_plan(root: Path, plan: EditPlan) -> tuple[str, ...]:
    """Write a plan made by `plan_edits`, all or nothing; returns the paths written.

    Every file is replaced atomically. When the file system fails part-way (a full disk, a file-size limit,
    a permission), every file already written is restored, created files and directories are removed, and
    `EditWriteError` says what failed.

    Raises:
        InputError: the plan has problems (nothing is written then).
        UnsafeEditError: the tree changed since the plan was made and an edit is now refused (nothing written).
        EditWriteError: writing failed; the tree is as it was before.
    """
    if plan.problems:
        raise InputError("the edits have unresolved problems; nothing was written")
    real_root = Path(os.path.realpath(root))
    targets: list[tuple[PlannedWrite, Path]] = []
    for write in plan.writes:
        # Re-check right before writing: the tree may have changed since the plan was made.
        checked = check_path(real_root, write.path)
        if isinstance(checked, str):
            raise UnsafeEditError([f"{write.path!r}: {checked}"])
        problem = check_writable(real_root, write.path)
        if problem is not None:
            raise EditWriteError(problem)
        targets.append((write, checked[1]))
    transaction = _Transaction()
    current = ""
    try:
        for write, target in targets:
            current = write.path
            transaction.stage(target, write.content.encode("utf-8"))
        for write, target in targets:
            current = write.path
            transaction.commit(target)
    except BaseException as exc:
        failures = transaction.undo()
        if not isinstance(exc, OSError):
            raise
        reason = exc.strerror or type(exc).__name__
        message = f"writing the file failed ({reason}); none of this reply's edits were applied"
        if failures:
            message += "; restoring the tree failed too: " + ", ".join(failures)
        raise EditWriteError(EditProblem(current, message, "write_failed")) from exc
    transaction.finish()
    return tuple(write.path for write, _ in targets)


def apply_edits(
    root: Path,
    edits: Sequence[FileEdit],
    *,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    rules: PathRules | None = None,
    allow_shrink: bool = False,
) -> EditPlan:
    """Validate every edit, then write them all, or write nothing.

    Returns:
        The plan; when `plan.problems` is non-empty nothing was written (or everything written was put back)
        and the problems are for the model: a SEARCH that matches zero or several times, a path the file
        system would refuse, or a write that failed part-way (`write_failed`).

    Raises:
        UnsafeEditError: an edit is refused; nothing was written.
    """
    plan = plan_edits(root, edits, max_file_bytes=max_file_bytes, rules=rules, allow_shrink=allow_shrink)
    if plan.ok:
        try:
            write_plan(root, plan)
        except EditWriteError as exc:
            return EditPlan(writes=plan.writes, problems=(exc.problem,), notes=plan.notes)
    return plan


@dataclass(frozen=True)
class AppliedReply:
    """What applying one reply did: the files written with their new text, or the problems for the model.

    Attributes:
        written: the paths written (relative, POSIX), in the reply's order; empty when `problems` is not.
        problems: one message per edit that could not be applied (nothing was written then).
        contents: path -> the complete new text of each written file: the pipeline's own record of the edits,
            from which the patch and the pull request are built.
        notes: what was read differently from how it was written (a mapped path, a quotation left alone).
        created: the written files that did not exist before.
    """

    written: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    contents: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    created: tuple[str, ...] = ()


def apply_reply(
    root: Path,
    reply: str,
    *,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    rules: PathRules | None = None,
    allow_shrink: bool = False,
) -> AppliedReply:
    """Parse a model's reply and apply its edits under `root`, all or nothing.

    Args:
        root: the tree.
        reply: the model's reply.
        max_file_bytes: the cap on a file's size.
        rules: how paths are read (see `paths.PathRules`).
        allow_shrink: the request asks to remove code (see `wholefile.wants_shrink`).

    Returns:
        The files written and their content, or the problems for the model (then nothing was written). A reply
        whose blocks change nothing (only quotations) is a problem too, naming what was left alone.

    Raises:
        UnsafeEditError: an edit is refused (nothing was written).
    """
    parsed = parse_reply(reply)
    problems = [str(p) for p in parsed.problems]
    if not parsed.edits and not problems:
        problems.append("the reply contains no edit: put each file path on its own line, then a fenced block")
    if problems:
        return AppliedReply(problems=tuple(problems))
    plan = apply_edits(root, parsed.edits, max_file_bytes=max_file_bytes, rules=rules, allow_shrink=allow_shrink)
    if not plan.ok:
        return AppliedReply(problems=tuple(str(p) for p in plan.problems), notes=plan.notes)
    if not plan.writes:
        listed = "; ".join(plan.notes)
        return AppliedReply(problems=(f"the reply changes no file ({listed}); send the edits that make the change",),
                            notes=plan.notes)  # fmt: skip
    return AppliedReply(
        written=tuple(w.path for w in plan.writes),
        contents={w.path: w.content for w in plan.writes},
        notes=plan.notes,
        created=tuple(w.path for w in plan.writes if w.created),
    )
