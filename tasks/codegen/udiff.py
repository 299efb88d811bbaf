"""Unified diffs as models write them, read into the same edits as SEARCH/REPLACE blocks.

Each hunk becomes one block: its context and `-` lines are the SEARCH text, its context and `+` lines the
REPLACE text, its `@@ -N` line number a hint only (`matching.replace_once` uses it to pick between several exact
matches, never to move an edit). What models get wrong and is still clear is read: a missing space before an
empty context line, `@@ ... @@` without numbers, wrong hunk counts, a missing `a/`/`b/` prefix, no headers at
all under a path line. A diff that creates a file (`--- /dev/null`) is a whole-file edit; one that deletes a
file is a problem (the pipeline deletes no files).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from tasks.codegen.parser import FileEdit, ParseProblem, SearchReplace, clean_path_line

__all__ = ["looks_like_diff", "parse_diff"]

_HUNK = re.compile(r"^@@+\s*(?:-(?P<old>\d+)(?:,\d+)?)?[^@]*@@+.*$")
_SKIP = re.compile(r"^(?:diff --git |index [0-9a-f]|new file mode|deleted file mode|old mode|new mode|similarity |"
                   r"rename from |rename to |Index: |={5,}$|\\ No newline)")  # fmt: skip


def looks_like_diff(lines: Sequence[str]) -> bool:
    """Whether a block's lines are a unified diff (headers, or a hunk header first)."""
    text = [line for line in lines if line.strip()]
    if not text:
        return False
    first = text[0]
    if first.startswith(("diff --git ", "Index: ")) or _HUNK.match(first):
        return True
    return first.startswith("--- ") and len(text) > 1 and text[1].startswith("+++ ")


def _header_path(line: str) -> str | None:
    """The path of a `--- a/x` or `+++ b/x` header line ("/dev/null" for none)."""
    raw = line[4:].split("\t", 1)[0].strip()
    if raw == "/dev/null":
        return raw
    if raw.startswith(("a/", "b/")):
        raw = raw[2:]
    return clean_path_line(raw)


class _File:
    def __init__(self, path: str | None, line: int) -> None:
        self.path = path
        self.line = line
        self.created = False
        self.deleted = False
        self.hunks: list[tuple[int | None, list[str], list[str]]] = []

    def start_hunk(self, hint: int | None) -> None:
        self.hunks.append((hint, [], []))

    def add(self, line: str) -> None:
        if not self.hunks:
            self.start_hunk(None)
        _, old, new = self.hunks[-1]
        if line.startswith("-"):
            old.append(line[1:])
        elif line.startswith("+"):
            new.append(line[1:])
        else:
            # A context line; models often drop the space of an empty one, or every leading space.
            text = line[1:] if line.startswith(" ") else line
            old.append(text)
            new.append(text)


def _read_files(body: Sequence[tuple[int, str]], path: str | None, path_line: int) -> list[_File]:
    files: list[_File] = []
    current: _File | None = None
    pending_old: str | None = None
    lines = list(body)
    for index, (number, line) in enumerate(lines):
        follows = lines[index + 1][1] if index + 1 < len(lines) else ""
        if line.startswith("--- ") and follows.startswith("+++ "):
            pending_old = _header_path(line) or ""
            continue
        if line.startswith("+++ ") and pending_old is not None:
            new_path = _header_path(line)
            current = _File(new_path if new_path != "/dev/null" else pending_old, number)
            current.created = pending_old == "/dev/null"
            current.deleted = new_path == "/dev/null"
            files.append(current)
            pending_old = None
            continue
        if _SKIP.match(line):
            continue
        if current is None:
            current = _File(path, path_line)
            files.append(current)
        hunk = _HUNK.match(line)
        if hunk is not None:
            old = hunk.group("old")
            current.start_hunk(int(old) if old else None)
        elif line.strip() or current.hunks:
            current.add(line)
    return files


def _strip_blank_tail(lines: list[str]) -> list[str]:
    # The blank line models leave before the closing fence is not part of the hunk.
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


def _edit_of(diff: _File) -> FileEdit | ParseProblem:
    path = diff.path
    if not path or path == "/dev/null":
        return ParseProblem(diff.line, "a diff without a file path: give the path in `--- a/<path>` `+++ b/<path>`")
    if diff.deleted:
        return ParseProblem(diff.line, "deleting a file is not supported; leave it, or empty it with a whole-file "
                                       "block", path)  # fmt: skip
    if diff.created:
        added = [line for _, _, new in diff.hunks for line in new]
        return FileEdit(path=path, kind="whole", content="".join(f"{line}\n" for line in added), line=diff.line)
    blocks: list[SearchReplace] = []
    for hint, old, new in diff.hunks:
        if len(old) and len(new) and old == new:
            continue  # a hunk of context only changes nothing
        old, new = _strip_blank_tail(old), _strip_blank_tail(new)
        search = "".join(f"{line}\n" for line in old)
        replace = "".join(f"{line}\n" for line in new)
        blocks.append(SearchReplace(search, replace, hint_line=hint))
    if not blocks:
        return ParseProblem(diff.line, "the diff has no hunk that changes anything", path)
    return FileEdit(path=path, kind="search_replace", blocks=tuple(blocks), line=diff.line, from_diff=True)


def parse_diff(
    body: Sequence[tuple[int, str]], path: str | None, path_line: int
) -> tuple[list[FileEdit], list[ParseProblem]]:
    """The edits of a unified diff block (its lines with their reply line numbers).

    Args:
        body: the block's lines.
        path: the path on the line above the block, used when the diff has no `---`/`+++` headers.
        path_line: that line's number in the reply.
    """
    edits: list[FileEdit] = []
    problems: list[ParseProblem] = []
    for diff in _read_files(body, path, path_line):
        edit = _edit_of(diff)
        if isinstance(edit, ParseProblem):
            problems.append(edit)
        else:
            edits.append(edit)
    if not edits and not problems:
        problems.append(ParseProblem(path_line, "the diff block holds no hunk", path))
    return edits, problems
