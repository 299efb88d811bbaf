"""Parse a model's reply into file edits.

The reply format (stated to the model in the system prompt, see `prompt.py`): a file path on a line of its own,
then a fenced block holding either the whole new content of the file or one or more SEARCH/REPLACE blocks:

````
calc.py
```python
<<<<<<< SEARCH
    return a - b
=======
    return a + b
>>>>>>> REPLACE
```
````

Real models write the same things in other ways too, and these are read as well: the path in the fence's
info string (```python title="calc.py"`, ```python:calc.py`, ```calc.py`); a unified diff (a ```diff fence,
or `--- a/` `+++ b/` headers, with or without a path line above), turned into SEARCH/REPLACE blocks carrying
each hunk's line number as a hint (`udiff.py`). A whole-file block that the prose around it calls a quotation
("for reference", "the current ...") is marked `quoted`; the apply step decides with the file in hand whether
it changes anything.

The parser never raises on any input: whatever it cannot read becomes a `ParseProblem` that is sent back to
the model. It does not judge paths (that is `apply.py`'s job): a hostile path is parsed as written so that the
safe-apply step can refuse it by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\s]*)(?P<rest>[^`]*)$")
_INFO_PATH = re.compile(r"""\b(?:title|file|filename|path|name)\s*=\s*(?:"([^"]+)"|'([^']+)'|(\S+))""", re.IGNORECASE)
_DIFF_LANGS = frozenset({"diff", "patch", "udiff"})
# Prose that presents a block as a quotation of what is there, not as the new content.
_QUOTE_WORDS = re.compile(
    r"for (?:reference|context)|\b(?:currently|as it (?:is|stands) now|unchanged|existing|original)\b"
    r"|\bcurrent (?:code|implementation|version|test|tests|function|file|content)\b|\blooks like\b",
    re.IGNORECASE,
)
_SEARCH = re.compile(r"^[ \t]*<{5,9}[ \t]*SEARCH[ \t]*$")
_DIVIDER = re.compile(r"^[ \t]*={5,9}[ \t]*$")
_REPLACE = re.compile(r"^[ \t]*>{5,9}[ \t]*REPLACE[ \t]*$")
# A path line: no whitespace inside, optionally decorated the way models like to decorate it.
_PATH_DECORATION = re.compile(r"^(?:#+\s*|\*\*|`|File:\s*|Path:\s*)+|(?:\*\*|`|:)+$", re.IGNORECASE)
_PATH_TEXT = re.compile(r"^[^\s`*<>|\"']+$")
_MAX_PATH_LEN = 400


@dataclass(frozen=True)
class SearchReplace:
    """One SEARCH/REPLACE block: replace the single occurrence of `search` with `replace`."""

    search: str
    replace: str
    hint_line: int | None = None


@dataclass(frozen=True)
class FileEdit:
    """An edit of one file, as the model wrote it.

    Attributes:
        path: the path as written in the reply (relative to the repository root; not yet checked).
        kind: `whole` (the block is the file's new content) or `search_replace`.
        content: the new content for a `whole` edit.
        blocks: the SEARCH/REPLACE blocks of a `search_replace` edit, applied in order.
        line: the 1-based line of the reply where the path stands, for messages.
        quoted: the reply's prose presents the block as a quotation ("for reference", "the current code").
        from_diff: the blocks come from a unified diff's hunks (their `hint_line` is the hunk's line number).
    """

    path: str
    kind: Literal["whole", "search_replace"]
    content: str = ""
    blocks: tuple[SearchReplace, ...] = ()
    line: int = 0
    quoted: bool = False
    from_diff: bool = False


@dataclass(frozen=True)
class ParseProblem:
    """Something in the reply that could not be read as an edit; the message is meant for the model."""

    line: int
    message: str
    path: str | None = None

    def __str__(self) -> str:
        where = f"{self.path} (reply line {self.line})" if self.path else f"reply line {self.line}"
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class ParseResult:
    """The edits found in a reply and the problems met on the way."""

    edits: tuple[FileEdit, ...] = ()
    problems: tuple[ParseProblem, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return bool(self.edits) and not self.problems


def clean_path_line(line: str) -> str | None:
    """The path written on `line`, or None when the line does not look like a lone path."""
    text = line.strip()
    if not text or len(text) > _MAX_PATH_LEN:
        return None
    # Strip decorations repeatedly: "**`calc.py`**:" -> "calc.py".
    for _ in range(4):
        stripped = _PATH_DECORATION.sub("", text).strip()
        if stripped == text:
            break
        text = stripped
    if not text or not _PATH_TEXT.match(text) or text.endswith(("/", "\\")):
        return None
    # A lone word with no dot or slash is prose ("Here", "Done") far more often than a file name, except for
    # the few extension-less files projects really have.
    if "." not in text and "/" not in text and text not in _BARE_FILE_NAMES:
        return None
    return text


_BARE_FILE_NAMES = frozenset(
    {"Makefile", "Dockerfile", "LICENSE", "README", "Procfile", "Gemfile", "Rakefile", "Justfile", "Containerfile"}
)


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return len(stripped) >= len(fence) and set(stripped) == {fence[0]}


def _join(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


def _parse_search_replace(
    body: list[tuple[int, str]], path: str, path_line: int
) -> tuple[tuple[SearchReplace, ...], list[ParseProblem]]:
    """Read SEARCH/REPLACE blocks from the lines of a fenced block (each with its reply line number)."""
    blocks: list[SearchReplace] = []
    problems: list[ParseProblem] = []
    state = "between"
    search: list[str] = []
    replace: list[str] = []
    start = path_line
    for number, line in body:
        if state == "between":
            if _SEARCH.match(line):
                state, search, replace, start = "search", [], [], number
            elif line.strip():
                problems.append(
                    ParseProblem(number, "text outside a SEARCH/REPLACE block inside the fenced block", path)
                )
                return tuple(blocks), problems
        elif state == "search":
            if _DIVIDER.match(line):
                state = "replace"
            elif _SEARCH.match(line) or _REPLACE.match(line):
                problems.append(ParseProblem(number, "expected ======= before this marker", path))
                return tuple(blocks), problems
            else:
                search.append(line)
        elif _REPLACE.match(line):
            blocks.append(SearchReplace(_join(search), _join(replace)))
            state = "between"
        elif _SEARCH.match(line) or _DIVIDER.match(line):
            problems.append(ParseProblem(number, "expected >>>>>>> REPLACE before this marker", path))
            return tuple(blocks), problems
        else:
            replace.append(line)
    if state != "between":
        problems.append(ParseProblem(start, "SEARCH/REPLACE block is not closed by >>>>>>> REPLACE", path))
    elif not blocks:
        problems.append(ParseProblem(path_line, "no SEARCH/REPLACE block found", path))
    return tuple(blocks), problems


def _info_path(opener: re.Match[str]) -> str | None:
    """A path the fence's info string names: ```python title="a.py"`, ```python:a.py`, ```a.py`."""
    named = _INFO_PATH.search(opener.group("rest") or "") or _INFO_PATH.search(opener.group("info"))
    if named is not None:
        return clean_path_line(next(group for group in named.groups() if group))
    info = opener.group("info").rpartition(":")[2]
    if info and ("." in info or "/" in info) and info.lower() not in _DIFF_LANGS:
        return clean_path_line(info)
    return None


def _path_above(lines: list[str], index: int) -> tuple[str | None, int]:
    """The path on the line just above the fence at `index` (one blank line between is tolerated)."""
    for back in (index - 1, index - 2):
        if back >= 0 and lines[back].strip():
            return clean_path_line(lines[back]), back + 1
    return None, index + 1


def _is_quoted(lines: list[str], path_index: int) -> bool:
    """Whether the prose just before a block (up to the previous fence or 3 lines) calls it a quotation."""
    prose: list[str] = []
    for back in range(path_index, max(path_index - 4, -1), -1):
        line = lines[back]
        if _FENCE.match(line):
            break
        prose.append(line)
    return bool(_QUOTE_WORDS.search(" ".join(prose)))


@dataclass
class _Block:
    """One fenced block as read: where it stands, its path, its body lines (with reply line numbers)."""

    fence: str
    fence_line: int
    path: str | None
    path_line: int
    info: str
    body: list[tuple[int, str]]
    closed: bool
    search_replace: bool


def _read_block(lines: list[str], index: int, opener: re.Match[str]) -> tuple[_Block, int]:
    """The block opened at `index`, and the index of the line after it."""
    fence = opener.group("fence")
    path, path_line = _path_above(lines, index)
    if path is None:
        info_path = _info_path(opener)
        if info_path is not None:
            path, path_line = info_path, index + 1
    probe = index + 1
    while probe < len(lines) and not lines[probe].strip():
        probe += 1
    is_search_replace = probe < len(lines) and bool(_SEARCH.match(lines[probe]))
    body: list[tuple[int, str]] = []
    cursor = index + 1
    closed = False
    in_block = False
    while cursor < len(lines):
        line = lines[cursor]
        if is_search_replace:
            # A fence inside SEARCH or REPLACE text is content, not the end of the block.
            if _SEARCH.match(line):
                in_block = True
            elif _REPLACE.match(line):
                in_block = False
            elif not in_block and _closes(line, fence):
                closed = True
                break
        elif _closes(line, fence):
            closed = True
            break
        body.append((cursor + 1, line))
        cursor += 1
    info = opener.group("info").partition(":")[0].lower()
    block = _Block(fence, index + 1, path, path_line, info, body, closed, is_search_replace)
    return block, cursor + 1


def _read_edits(block: _Block, lines: list[str]) -> tuple[list[FileEdit], list[ParseProblem]]:
    """The edits of one closed block (none for a block of explanation)."""
    from tasks.codegen.udiff import looks_like_diff, parse_diff

    path, path_line = block.path, block.path_line
    if not block.search_replace and (block.info in _DIFF_LANGS or looks_like_diff([line for _, line in block.body])):
        return parse_diff(block.body, path, path_line)
    if path is None:
        if block.search_replace:
            message = "SEARCH/REPLACE block without a file path on the line before the fence"
            return [], [ParseProblem(block.fence_line, message)]
        return [], []
    if block.search_replace:
        blocks, problems = _parse_search_replace(block.body, path, path_line)
        edits = [FileEdit(path=path, kind="search_replace", blocks=blocks, line=path_line)]
        return (edits if blocks and not problems else []), problems
    content = _join([line for _, line in block.body])
    quoted = _is_quoted(lines, path_line - 1)
    return [FileEdit(path=path, kind="whole", content=content, line=path_line, quoted=quoted)], []


def parse_reply(text: str) -> ParseResult:
    """Find every edit in a model's reply.

    Fenced blocks with no path (above the fence or in its info string) are explanation and are skipped, unless
    they hold SEARCH/REPLACE markers (then the missing path is a problem) or a unified diff with its own
    `---`/`+++` headers. Never raises.

    Args:
        text: the model's reply.

    Returns:
        The edits in reply order and the problems found.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    edits: list[FileEdit] = []
    problems: list[ParseProblem] = []
    index = 0
    while index < len(lines):
        opener = _FENCE.match(lines[index])
        if opener is None:
            index += 1
            continue
        block, index = _read_block(lines, index, opener)
        if not block.closed:
            if block.path is not None or block.search_replace:
                message = f"the fenced block is not closed with {block.fence}"
                problems.append(ParseProblem(block.fence_line, message, block.path))
            continue
        found, block_problems = _read_edits(block, lines)
        edits.extend(found)
        problems.extend(block_problems)
    return ParseResult(edits=tuple(edits), problems=tuple(problems))
