"""Find where a SEARCH text (or a diff hunk's old side) stands in a file: tolerant, never loose.

The passes, in order, each accepted only when it finds exactly one place:

1. the exact text (once in the file), then the exact lines;
2. the lines up to trailing whitespace;
3. the lines up to one uniform indentation offset (the replacement is re-indented by the same offset);
4. `...` lines in both SEARCH and REPLACE: each piece between them matches once, in order, and is replaced by
   the matching piece of REPLACE.

Blank lines that both SEARCH and REPLACE start or end with are context, not text to rewrite, so a SEARCH
ending with a blank line never adds one. When nothing matches exactly once, `Mismatch` names the closest lines
of the file, so the model can copy them.

Decisions:
- Matching works on lines, never on characters: a SEARCH that matches in the middle of a line would rewrite
  half of it.
- A diff hunk's line number only picks between several exact matches (the one standing at that line); a wrong
  number never moves an edit elsewhere.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Mismatch", "replace_once"]

_ELISION = re.compile(r"^\s*(?:\.\.\.|…|(?:#|//|/\*|<!--|--)\s*(?:\.\.\.|…)\s*(?:\*/|-->)?)\s*$")
_MAX_CLOSEST_LINES = 20_000


class Mismatch(Exception):
    """The SEARCH text does not match exactly once; the message (for the model) says why and what is closest."""


@dataclass(frozen=True)
class _Hit:
    start: int
    end: int
    indent: str = ""  # added to the replacement's lines (positive offset)
    dedent: str = ""  # removed from the replacement's lines (negative offset)


def _split(text: str) -> list[str]:
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return lines


def _join(lines: Sequence[str], trailing: bool) -> str:
    text = "\n".join(lines)
    return text + "\n" if trailing and lines else text


def _hits(file: list[str], search: list[str], same: Callable[[str, str], bool]) -> list[_Hit]:
    size = len(search)
    return [
        _Hit(start, start + size)
        for start in range(len(file) - size + 1)
        if all(same(file[start + i], search[i]) for i in range(size))
    ]


def _leading(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _indent_hits(file: list[str], search: list[str]) -> list[_Hit]:
    """Places where every non-blank SEARCH line is its file line with one common prefix added or removed."""
    first = next((i for i, line in enumerate(search) if line.strip()), None)
    if first is None:
        return []
    hits: list[_Hit] = []
    for start in range(len(file) - len(search) + 1):
        window = file[start : start + len(search)]
        theirs, ours = _leading(window[first]), _leading(search[first])
        if theirs.endswith(ours) and theirs != ours:
            hit = _Hit(start, start + len(search), indent=theirs[: len(theirs) - len(ours)])
            prefix = hit.indent
            ok = all(
                (not s.strip() and not f.strip()) or (s.strip() and f.rstrip() == prefix + s.rstrip())
                for f, s in zip(window, search, strict=True)
            )
        elif ours.endswith(theirs) and theirs != ours:
            hit = _Hit(start, start + len(search), dedent=ours[: len(ours) - len(theirs)])
            prefix = hit.dedent
            ok = all(
                (not s.strip() and not f.strip()) or (s.strip() and s.rstrip() == prefix + f.rstrip())
                for f, s in zip(window, search, strict=True)
            )
        else:
            continue
        if ok:
            hits.append(hit)
    return hits


def _reindent(lines: list[str], hit: _Hit) -> list[str]:
    if hit.indent:
        return [hit.indent + line if line.strip() else line for line in lines]
    if hit.dedent:
        return [line[len(hit.dedent) :] if line.startswith(hit.dedent) else line.lstrip() for line in lines]
    return lines


def _trim_shared_blank_edges(search: list[str], replace: list[str]) -> tuple[list[str], list[str]]:
    while search and replace and not search[-1].strip() and not replace[-1].strip():
        search, replace = search[:-1], replace[:-1]
    while search and replace and not search[0].strip() and not replace[0].strip():
        search, replace = search[1:], replace[1:]
    return search, replace


def _pick(hits: list[_Hit], hint: int | None) -> _Hit | int | None:
    """The one hit, None for none, or the number of hits when they are several (a hint may pick one)."""
    if len(hits) == 1:
        return hits[0]
    if not hits:
        return None
    if hint is not None:
        at_hint = [hit for hit in hits if hit.start == hint]
        if len(at_hint) == 1:
            return at_hint[0]
    return len(hits)


def _find(file: list[str], search: list[str], hint: int | None, lo: int = 0) -> _Hit | int | None:
    """The place of `search` in `file[lo:]` by the first pass that finds any (see the module's passes)."""
    region = file[lo:]
    shifted = None if hint is None else hint - lo
    for hits in (
        _hits(region, search, str.__eq__),
        _hits(region, search, lambda a, b: a.rstrip() == b.rstrip()),
        _indent_hits(region, search),
    ):
        found = _pick(hits, shifted)
        if found is None:
            continue
        if isinstance(found, int):
            return found
        return _Hit(found.start + lo, found.end + lo, found.indent, found.dedent)
    return None


def _closest(file: list[str], search: list[str]) -> str:
    """The file's lines most like `search`, numbered, or "" when nothing is close."""
    wanted = [line.strip() for line in search if line.strip()]
    if not wanted or len(file) > _MAX_CLOSEST_LINES:
        return ""
    stripped = [line.strip() for line in file]
    size = max(len(search), 1)
    best, best_start = 0.0, 0
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2("\n".join(wanted))
    for start in range(max(len(file) - size + 1, 1)):
        matcher.set_seq1("\n".join(line for line in stripped[start : start + size] if line))
        if matcher.real_quick_ratio() <= best or matcher.quick_ratio() <= best:
            continue
        ratio = matcher.ratio()
        if ratio > best:
            best, best_start = ratio, start
    if best < 0.5:
        return ""
    shown = file[best_start : best_start + size]
    numbered = "\n".join(f"{best_start + 1 + i:>5} | {line}" for i, line in enumerate(shown[:30]))
    return f"\nThe closest lines in the file ({best_start + 1}-{best_start + len(shown)}) are:\n{numbered}"


def _preview(lines: Sequence[str], limit: int = 240) -> str:
    text = "\n".join(lines)
    return text if len(text) <= limit else text[:limit] + "..."


def _problem(found: int | None, file: list[str], search: list[str]) -> Mismatch:
    if isinstance(found, int):
        return Mismatch(
            f"the SEARCH text matches {found} times; include more surrounding lines so it matches exactly once:\n"
            + _preview(search)
        )
    closest = _closest(file, search)
    return Mismatch("the SEARCH text does not match the file; copy the lines verbatim:\n" + _preview(search) + closest)


def _pieces(lines: list[str]) -> list[list[str]]:
    pieces: list[list[str]] = [[]]
    for line in lines:
        if _ELISION.match(line):
            pieces.append([])
        else:
            pieces[-1].append(line)
    return pieces


def _replace_elided(file: list[str], search: list[str], replace: list[str]) -> list[str] | None:
    """`...` in SEARCH and REPLACE alike: each SEARCH piece found once, in order, replaced by its REPLACE piece."""
    old, new = _pieces(search), _pieces(replace)
    if len(old) < 2 or len(old) != len(new):
        return None
    result = list(file)
    cursor = 0
    for old_piece, new_piece in zip(old, new, strict=True):
        old_piece, new_piece = _trim_shared_blank_edges(old_piece, new_piece)
        if not old_piece:
            if new_piece:
                raise Mismatch("a REPLACE piece next to `...` has no SEARCH lines to say where it goes")
            continue
        found = _find(result, old_piece, None, cursor)
        if not isinstance(found, _Hit):
            raise _problem(found, result[cursor:], old_piece)
        result[found.start : found.end] = _reindent(new_piece, found)
        cursor = found.start + len(new_piece)
    return result


def replace_once(text: str, search: str, replace: str, *, hint_line: int | None = None) -> str:
    """`text` with the one place `search` stands replaced by `replace` (see the module's passes).

    Args:
        text: the file's current text.
        search: the lines to find (non-empty).
        replace: the lines that take their place.
        hint_line: a 1-based line number where the text is thought to start (a diff hunk's), used only to pick
            between several exact matches.

    Raises:
        Mismatch: no single place matches; the message names the closest lines.
    """
    exact = text.count(search)
    if exact == 1:
        return text.replace(search, replace, 1)
    file, trailing = _split(text), text.endswith("\n") or not text
    ours, theirs = _trim_shared_blank_edges(_split(search), _split(replace))
    if not ours:
        raise Mismatch("the SEARCH text is only blank lines; quote the lines to change")
    hint = None if hint_line is None else hint_line - 1
    found = _find(file, ours, hint)
    if isinstance(found, _Hit):
        new = [*file[: found.start], *_reindent(theirs, found), *file[found.end :]]
        return _join(new, trailing)
    elided = _replace_elided(file, ours, theirs) if found is None else None
    if elided is not None:
        return _join(elided, trailing)
    raise _problem(found if found is not None or exact < 2 else exact, file, ours)
