"""Definitions and references from source code with tree-sitter.

The tag queries are data files in `queries/` (one per language, Aider-style capture names):
`@definition.<kind>` captures a definition's whole node (its extent bounds a chunk), `@name.definition.<kind>`
its name, `@name.reference.<kind>` a referenced name (calls, base classes, type uses, imports). The grammars
come from the tree-sitter organisation's own wheels, which ship compiled parsers, so nothing is downloaded at
run time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import PurePosixPath

from tasks.indexing.models import Definition

# File extension -> grammar name. The query file is named after the grammar (tsx shares TypeScript's).
_EXTENSIONS: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".pyw": "python",
    ".js": "javascript",
    ".jsx": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
}
_QUERY_FILE = {"tsx": "typescript"}


def _grammar(name: str) -> object:
    # Imported lazily: a process that only searches never loads a grammar.
    loaders: dict[str, Callable[[], object]] = {
        "python": lambda: __import__("tree_sitter_python").language(),
        "javascript": lambda: __import__("tree_sitter_javascript").language(),
        "typescript": lambda: __import__("tree_sitter_typescript").language_typescript(),
        "tsx": lambda: __import__("tree_sitter_typescript").language_tsx(),
        "go": lambda: __import__("tree_sitter_go").language(),
        "rust": lambda: __import__("tree_sitter_rust").language(),
        "java": lambda: __import__("tree_sitter_java").language(),
    }
    return loaders[name]()


def language_for(path: str) -> str | None:
    """The grammar that parses `path`, by extension, or None for files chunked by lines."""
    return _EXTENSIONS.get(PurePosixPath(path).suffix.lower())


def supported_languages() -> list[str]:
    """The grammars the indexer extracts symbols for."""
    return sorted(set(_EXTENSIONS.values()))


def query_source(language: str) -> str:
    """The text of the tag query file for `language`."""
    name = _QUERY_FILE.get(language, language)
    return resources.files("tasks.indexing").joinpath("queries", f"{name}.scm").read_text("utf-8")


@dataclass(frozen=True, slots=True)
class Symbols:
    """What the tag query found in one file.

    Attributes:
        defs: definitions in source order.
        refs: referenced names and their counts (names that are only definitions here are not references).
        has_errors: the parser had to recover from syntax errors (the symbols are still the best it found).
    """

    defs: tuple[Definition, ...]
    refs: Counter[str]
    has_errors: bool


class _Language:
    """A parser and its compiled tag query, built once per process and language."""

    def __init__(self, name: str) -> None:
        from tree_sitter import Language, Parser, Query

        language = Language(_grammar(name))
        source = query_source(name).encode("utf-8")
        self.parser = Parser(language)
        self.query = Query(language, source.decode("utf-8"))
        # Patterns that capture references only: their matches need no pairing of definition and name.
        self.ref_patterns = frozenset(
            i
            for i in range(self.query.pattern_count)
            if b"@definition." not in source[self.query.start_byte_for_pattern(i) : self.query.end_byte_for_pattern(i)]
        )


_LOADED: dict[str, _Language] = {}


def _load(name: str) -> _Language:
    loaded = _LOADED.get(name)
    if loaded is None:
        loaded = _LOADED[name] = _Language(name)
    return loaded


def extract_symbols(language: str, source: bytes) -> Symbols:
    """Parse `source` and run the language's tag query.

    Args:
        language: a grammar name from `language_for`.
        source: the file's UTF-8 bytes.
    """
    from tree_sitter import QueryCursor

    lang = _load(language)
    tree = lang.parser.parse(source)
    defs: list[Definition] = []
    def_name_starts: set[int] = set()
    # By start byte: a name two patterns capture (a call and a type use) counts once.
    ref_nodes: dict[int, bytes | None] = {}
    ref_patterns = lang.ref_patterns
    for pattern, captures in QueryCursor(lang.query).matches(tree.root_node):
        if pattern in ref_patterns:
            for nodes in captures.values():
                for ref in nodes:
                    ref_nodes[ref.start_byte] = ref.text
            continue
        node = None
        kind = ""
        name_node = None
        for capture, nodes in captures.items():
            if capture.startswith("name.reference."):
                ref_nodes.update((ref.start_byte, ref.text) for ref in nodes)
            elif capture.startswith("name.definition."):
                name_node = nodes[0]
            elif capture.startswith("definition."):
                node = nodes[0]
                kind = capture[11:]
        if node is not None and name_node is not None:
            def_name_starts.add(name_node.start_byte)
            end_row, end_col = node.end_point
            defs.append(
                Definition(
                    name=(name_node.text or b"").decode("utf-8", "replace"),
                    kind=kind,
                    start_line=node.start_point[0],
                    # A node that ends at column 0 ends on the line before.
                    end_line=end_row - 1 if end_col == 0 and end_row > node.start_point[0] else end_row,
                    name_line=name_node.start_point[0],
                )
            )
    # Generic patterns such as `(type_identifier) @name.reference.type` also match the names of definitions.
    counts: Counter[bytes | None] = Counter(text for start, text in ref_nodes.items() if start not in def_name_starts)
    refs: Counter[str] = Counter({text.decode("utf-8", "replace"): n for text, n in counts.items() if text})
    defs.sort(key=lambda d: (d.start_line, -d.end_line))
    return Symbols(defs=tuple(defs), refs=refs, has_errors=bool(tree.root_node.has_error))
