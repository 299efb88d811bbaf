"""Split a file into searchable chunks: at symbol boundaries where there are symbols, by lines elsewhere.

A definition that fits the cap is one chunk (with the comments and decorators just above it). A larger one is
split along its nested definitions; what lies between them (a class's header, fields, a function's body
between nested functions) becomes line chunks under the enclosing symbol's name. Files without symbols are cut
into windows of lines. Every chunk also respects a character cap so that one very long line cannot make a
chunk huge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import accumulate

from tasks.indexing.models import Chunk, Definition
from tasks.indexing.terms import identifier_parts, names_and_parts

MAX_LINES = 80
MAX_CHARS = 6000
# Comment and decorator lines directly above a definition travel with it, up to this many.
_MAX_LEADING = 30
_LEADING_MARKS = ("#", "//", "/*", "*", "@")


@dataclass(slots=True)
class _Node:
    definition: Definition
    children: list[_Node] = field(default_factory=list)


def _nest(defs: tuple[Definition, ...]) -> list[_Node]:
    """Definitions as a forest by extent; `defs` is sorted by (start, -end)."""
    roots: list[_Node] = []
    stack: list[_Node] = []
    for definition in defs:
        node = _Node(definition)
        while stack and definition.start_line > stack[-1].definition.end_line:
            stack.pop()
        # Overlapping but not nested extents (rare, from odd captures) are treated as siblings.
        if stack and definition.end_line <= stack[-1].definition.end_line:
            stack[-1].children.append(node)
        else:
            stack.clear()
            roots.append(node)
        stack.append(node)
    return roots


class _Chunker:
    def __init__(self, lines: list[str], defs: tuple[Definition, ...], max_lines: int, max_chars: int) -> None:
        self.lines = lines
        self.defs = defs
        self.max_lines = max_lines
        self.max_chars = max_chars
        self.spans: list[tuple[int, int, str | None]] = []
        # Characters before the end of each line (without newlines), for O(1) span sizes.
        self.cumulative = list(accumulate(map(len, lines)))

    def region(self, start: int, end: int, children: list[_Node], container: str | None) -> None:
        cursor = start
        for child in children:
            d = child.definition
            # A sibling that overlaps the previous one (odd captures) may be covered already.
            if d.end_line < cursor:
                continue
            lead = d.start_line
            while (
                lead > cursor
                and d.start_line - lead < _MAX_LEADING
                and self.lines[lead - 1].lstrip().startswith(_LEADING_MARKS)
            ):
                lead -= 1
            if lead > cursor:
                self.gap(cursor, lead - 1, container)
            self.definition(child, max(lead, cursor), container)
            cursor = max(cursor, d.end_line + 1)
        if cursor <= end:
            self.gap(cursor, end, container)

    def definition(self, node: _Node, start: int, container: str | None) -> None:
        d = node.definition
        name = f"{container}.{d.name}" if container else d.name
        end = min(d.end_line, len(self.lines) - 1)
        if end - start + 1 <= self.max_lines or not node.children:
            self.windows(start, end, name)
        else:
            self.region(start, end, node.children, name)

    def gap(self, start: int, end: int, symbol: str | None) -> None:
        while start <= end and not self.lines[start].strip():
            start += 1
        while end >= start and not self.lines[end].strip():
            end -= 1
        if start <= end:
            self.windows(start, end, symbol)

    def windows(self, start: int, end: int, symbol: str | None) -> None:
        """Spans of at most max_lines lines and max_chars characters covering [start, end]."""
        size = self.cumulative[end] - (self.cumulative[start - 1] if start else 0) + (end - start + 1)
        if end - start < self.max_lines and size <= self.max_chars:
            self.spans.append((start, end, symbol))
            return
        first = start
        chars = 0
        for index in range(start, end + 1):
            size = len(self.lines[index]) + 1
            if index > first and (index - first >= self.max_lines or chars + size > self.max_chars):
                self.spans.append((first, index - 1, symbol))
                first, chars = index, 0
            chars += size
        self.spans.append((first, end, symbol))

    def chunks(self) -> list[Chunk]:
        self.region(0, len(self.lines) - 1, _nest(self.defs), None)
        out: list[Chunk] = []
        starts = sorted((d.name_line, d.name) for d in self.defs)
        position = 0
        for first, last, symbol in self.spans:
            text = "\n".join(self.lines[first : last + 1])
            if len(text) > self.max_chars:
                text = text[: self.max_chars]
            while position < len(starts) and starts[position][0] < first:
                position += 1
            names: list[str] = []
            scan = position
            while scan < len(starts) and starts[scan][0] <= last:
                names.append(starts[scan][1])
                scan += 1
            out.append(
                Chunk(
                    start_line=first + 1,
                    end_line=last + 1,
                    symbol=symbol,
                    text=text,
                    parts=identifier_parts(text),
                    defs=names_and_parts(names),
                )
            )
        return out


def chunk_text(
    text: str,
    defs: tuple[Definition, ...] = (),
    *,
    max_lines: int = MAX_LINES,
    max_chars: int = MAX_CHARS,
) -> list[Chunk]:
    """Chunks of `text`, following the definitions' boundaries when there are any.

    Args:
        text: the whole file.
        defs: its definitions, sorted by (start_line, -end_line), lines 0-based.
        max_lines: the cap on a chunk's lines.
        max_chars: the cap on a chunk's characters (a longer single line is cut).
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        return []
    return _Chunker(lines, defs, max_lines, max_chars).chunks()
