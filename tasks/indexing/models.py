"""Plain data the indexing package passes around: results returned to callers and per-file analyses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

# Why a file is not indexed, for people: each reason code of `IndexStats.skipped_files` and `skipped_by_reason`.
SKIP_REASONS: dict[str, str] = {
    "binary": "binary (a known binary extension, or a NUL byte in its first 8 KiB)",
    "huge": "too large (over max_file_bytes)",
    "vendored": "vendored code (node_modules/, vendor/, third_party/, ...)",
    "generated": "generated (lock file, minified, protobuf output, a 'do not edit' marker)",
    "symlink": "a symbolic link",
    "unreadable": "unreadable (retried on the next run)",
}


@dataclass(frozen=True, slots=True)
class IndexStats:
    """What one index run did.

    Attributes:
        files: indexed files in the repository after the run.
        changed: files added, updated or removed by this run (skipped files whose record changed included).
        symbols: definitions in the index after the run.
        chunks: searchable chunks in the index after the run.
        skipped: files in the repository that are not indexed (binary, vendored, generated, huge, unreadable).
        elapsed_s: wall time of the run in seconds.
        skipped_by_reason: `skipped` broken down by reason (`binary`, `vendored`, `generated`, `huge`,
            `unreadable`, `symlink`, `submodule`).
        problems: one line per file that needed attention (unreadable, invalid UTF-8, parse errors).
        store: where the index lives.
        reused: of `changed`, the files whose content the store had already analysed (for another clone,
            worktree or branch sharing the store), linked without being read.
        skipped_files: every skipped file as (path, reason code), by path; `SKIP_REASONS` says what each
            code means.
    """

    files: int
    changed: int
    symbols: int
    chunks: int
    skipped: int
    elapsed_s: float
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    store: str = ""
    reused: int = 0
    skipped_files: tuple[tuple[str, str], ...] = ()

    def as_dict(self) -> dict[str, int | float]:
        """The figures the CLI prints with `--json`: exactly files, changed, symbols, chunks, skipped, elapsed_s."""
        return {
            "files": self.files,
            "changed": self.changed,
            "symbols": self.symbols,
            "chunks": self.chunks,
            "skipped": self.skipped,
            "elapsed_s": round(self.elapsed_s, 3),
        }

    model_dump = as_dict

    def skipped_as_list(self) -> list[dict[str, str]]:
        """`skipped_files` as the CLI prints it with `--json`: `[{"path": ..., "reason": ...}]`."""
        return [{"path": path, "reason": reason} for path, reason in self.skipped_files]


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One search result: a chunk of a file.

    Attributes:
        path: the file, relative to the repository root, with `/` separators.
        start_line: first line of the chunk (1-based).
        end_line: last line of the chunk (1-based, inclusive).
        symbol: the definition the chunk belongs to (`Class.method`), or None for top-level code and text.
        score: relevance, higher is better (BM25 with the definition boost; comparable within one query).
        text: the chunk's text.
    """

    path: str
    start_line: int
    end_line: int
    symbol: str | None
    score: float
    text: str

    def as_dict(self) -> dict[str, str | int | float | None]:
        """The result as the CLI prints it with `--json` (without the text)."""
        return {
            "path": self.path,
            "start_line": self.start_line,
            "end_line": self.end_line,
            "symbol": self.symbol,
            "score": round(self.score, 4),
        }


@dataclass(frozen=True, slots=True)
class FileHit:
    """One file of a file-level search, with its best chunks.

    Attributes:
        path: the file, relative to the repository root, with `/` separators.
        score: relevance, higher is better (comparable within one query).
        hits: the file's best chunks, best first (may be empty when only the file's path or stemmed words match).
    """

    path: str
    score: float
    hits: tuple[SearchHit, ...]

    def as_dict(self) -> dict[str, str | float | list[dict[str, str | int | float | None]]]:
        """The file as the CLI prints it with `--json` (its chunks without their text)."""
        return {"path": self.path, "score": round(self.score, 4), "hits": [hit.as_dict() for hit in self.hits]}


class Definition(NamedTuple):
    """A symbol defined in a file. Lines are 0-based here (tree-sitter rows), inclusive.

    A named tuple, like `Chunk`: tens of thousands cross from worker processes, and tuples pickle fastest.
    """

    name: str
    kind: str
    start_line: int
    end_line: int
    name_line: int


class Chunk(NamedTuple):
    """A searchable piece of a file. Lines are 1-based and inclusive.

    Attributes:
        parts: the split words of the compound identifiers in `text` (`getUserName` -> `get user name`).
        defs: names (and their parts) of the definitions that start inside the chunk, for the definition boost.
    """

    start_line: int
    end_line: int
    symbol: str | None
    text: str
    parts: str
    defs: str


@dataclass(frozen=True, slots=True)
class FileAnalysis:
    """Everything the index stores about one file, computed away from the database (in a worker process).

    Attributes:
        status: `indexed`, or the reason the file is skipped.
        blob: git blob id of the content the analysis saw; empty when it could not be read (retry next run).
        signatures: for each definition, its first source line (what a repo map shows).
        refs: referenced names and how often.
        problem: a one-line note for the report (unreadable, invalid UTF-8, syntax errors), or None.
    """

    path: str
    status: str
    blob: str
    lang: str | None = None
    chunks: tuple[Chunk, ...] = ()
    defs: tuple[Definition, ...] = ()
    signatures: tuple[str, ...] = ()
    refs: tuple[tuple[str, int], ...] = ()
    problem: str | None = None

    def to_wire(self) -> WireAnalysis:
        """The analysis as plain tuples, for the pipe from a worker process.

        Pickling dataclasses and named tuples calls Python code per object; plain tuples pickle in C, which
        halves the cost of moving a large repository's analyses between processes.
        """
        return (
            self.path, self.status, self.blob, self.lang, tuple(map(tuple, self.chunks)),
            tuple(map(tuple, self.defs)), self.signatures, self.refs, self.problem,
        )

    @classmethod
    def from_wire(cls, wire: WireAnalysis) -> FileAnalysis:
        """The analysis `to_wire` flattened."""
        path, status, blob, lang, chunks, defs, signatures, refs, problem = wire
        return cls(
            path, status, blob, lang, tuple(map(Chunk._make, chunks)), tuple(map(Definition._make, defs)),
            signatures, refs, problem,
        )


# What `FileAnalysis.to_wire` returns: its fields in order, chunks and definitions as plain tuples.
WireAnalysis = tuple[
    str, str, str, str | None, tuple[tuple[Any, ...], ...], tuple[tuple[Any, ...], ...], tuple[str, ...],
    tuple[tuple[str, int], ...], str | None,
]
