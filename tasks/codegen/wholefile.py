"""Whether a whole-file block means "this is the file now", or is a quotation, or a fragment to send back.

A block replaces an existing file only when it is a plausible whole file:

- the file's own text: changes nothing (`unchanged`);
- a line the file does not have that elides code (`# ... rest unchanged ...`, `// ...`, `/* ... */`,
  `<!-- ... -->`, a `...` line alone): problem `elided`;
- sharply shorter than the file (under 70% of its lines and 4+ lines fewer), unless the request asks to cut:
  a quotation (`quote`) when its lines stand in the file as they are or the prose calls it one, else problem
  `not_whole`;
- lines standing in the file as they are, presented as a quotation ("for reference", "the current ..."):
  `quote`;
- anything else: `write`.

A quotation changes nothing, and the reply's other edits still apply; the note says it was left alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["WholeFileVerdict", "judge_whole", "wants_shrink"]

# A comment in any common style; what it says decides whether it stands for omitted code.
_COMMENT = re.compile(r"^\s*(?:#|//|/\*|<!--|--|;|\*|\{/\*)\s*(?P<text>.*?)\s*(?:\*/\}|\*/|-->)?\s*$")
_ELIDING_WORDS = re.compile(r"\b(?:unchanged|omitted|elided|snip(?:ped)?)\b", re.IGNORECASE)
_ELIDING_PHRASE = re.compile(
    r"^(?:\.\.\.\s*)?(?:the )?(?:rest|remainder|remaining|existing|other|previous|same)\b.*"
    r"\b(?:code|file|content|methods|functions|tests|imports|implementation|as before|here)\b",
    re.IGNORECASE,
)
_ELLIPSIS_LINE = re.compile(r"^\s*(?:\.\.\.|…)\s*$")
_SHRINK_WORDS = re.compile(
    r"\b(?:remove|delete|drop|shorten|trim|cut|strip|prune|replace the (?:whole|entire) file|rewrite|empty)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class WholeFileVerdict:
    """What a whole-file block of an existing (or missing) file means.

    Attributes:
        action: `write`, `unchanged` (the file's own text), `quote` (changes nothing), or `problem`.
        kind: the problem's kind (`elided`, `not_whole`) when `action` is `problem`.
        message: the problem's message for the model, or the note for a quotation.
    """

    action: Literal["write", "unchanged", "quote", "problem"]
    kind: Literal["elided", "not_whole"] | None = None
    message: str = ""


def wants_shrink(request: str) -> bool:
    """Whether the request asks to remove or cut code (so a much shorter whole file is plausible)."""
    return bool(_SHRINK_WORDS.search(request))


def _elision(old_lines: list[str], new_lines: list[str]) -> str | None:
    """The first line of `new_lines` that elides code and is not a line of the old file."""
    old_set = {line.strip() for line in old_lines}
    old_ellipses, new_ellipses = _bare_ellipses(old_lines), _bare_ellipses(new_lines)
    for line in new_lines:
        if line.strip() in old_set:
            continue
        comment = _COMMENT.match(line)
        if comment is not None and _eliding(comment.group("text")):
            return line.strip()
    if old_lines and new_ellipses > old_ellipses:
        # `...` is real Python (a stub's body): it elides only where the file did not have it.
        return "..."
    return None


def _bare_ellipses(lines: list[str]) -> int:
    """`...` lines alone that are not the body of a `def`/`class`/block header (`def f(): ...` is Python)."""
    count, previous = 0, ""
    for line in lines:
        if _ELLIPSIS_LINE.match(line) and not previous.rstrip().endswith(":"):
            count += 1
        if line.strip():
            previous = line
    return count


def _eliding(text: str) -> bool:
    if not text or len(text.split()) > 10:
        return False
    if text in ("...", "…") or text.startswith(("...", "…")) or text.endswith(("...", "…")):
        return True
    return bool(_ELIDING_WORDS.search(text) or _ELIDING_PHRASE.match(text))


def _stands_in(old_lines: list[str], new_lines: list[str]) -> bool:
    """Whether the block's non-blank lines stand in the file as one run, in order (blank lines aside)."""
    old = [line.rstrip() for line in old_lines if line.strip()]
    new = [line.rstrip() for line in new_lines if line.strip()]
    if not new or len(new) > len(old):
        return False
    starts = (i for i, line in enumerate(old) if line == new[0])
    return any(old[start : start + len(new)] == new for start in starts)


def judge_whole(old: str | None, new: str, *, path: str, quoted: bool, allow_shrink: bool) -> WholeFileVerdict:
    """Judge a whole-file block for `path` against the file's current text (None: the file does not exist).

    Args:
        old: the file's current text, or None.
        new: the block's text.
        path: the file's path, for messages.
        quoted: the reply's prose presents the block as a quotation.
        allow_shrink: the request asks to remove code, so a much shorter file is plausible.
    """
    new_lines = new.splitlines()
    old_lines = old.splitlines() if old is not None else []
    if old is not None and new.rstrip() == old.rstrip():
        return WholeFileVerdict("unchanged")
    elided = _elision(old_lines, new_lines)
    if elided is not None:
        return WholeFileVerdict(
            "problem", "elided",
            f"the block for {path} is not the whole file: it elides code ({elided!r}); a whole-file block must "
            "hold every line of the file. Send SEARCH/REPLACE blocks for the lines to change instead",
        )  # fmt: skip
    if old is None:
        return WholeFileVerdict("write")
    stands_in = _stands_in(old_lines, new_lines)
    quote_note = f"{path}: the block quotes part of the file; it was left unchanged"
    shorter = len(new_lines) < 0.7 * len(old_lines) and len(old_lines) - len(new_lines) >= 4
    if shorter and not allow_shrink:
        if stands_in or quoted:
            return WholeFileVerdict("quote", message=quote_note)
        return WholeFileVerdict(
            "problem", "not_whole",
            f"the block for {path} has {len(new_lines)} lines where the file has {len(old_lines)}, so it is read "
            "as a fragment, not the whole file; send SEARCH/REPLACE blocks for the lines to change (a whole-file "
            "block must hold every line of the file)",
        )  # fmt: skip
    if stands_in and quoted:
        return WholeFileVerdict("quote", message=quote_note)
    return WholeFileVerdict("write")
