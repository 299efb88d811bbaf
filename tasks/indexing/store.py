"""Where the index lives: a small `Store` interface and its embedded SQLite implementation.

One SQLite database per repository (by default `<git dir>/vibe/index.sqlite`, out of the working tree and
per worktree). Writers hold an exclusive advisory lock on a side file for the whole run, so two overlapping
index runs on one repository take turns: the second one waits, then sees what the first one stored and does
only what is left. Each batch of files is written in one transaction (old rows out, new rows in, the file's
blob id last), so an interrupted run leaves a consistent index that the next run completes. WAL mode lets
searches read while a run writes.

The schema carries a version; a store written by another version is rebuilt from scratch by the next index
run (the index is derived data), and readers are told to re-index.

A server-backed store shared by many workers can implement the same `Store` protocol.
"""

from __future__ import annotations

import sqlite3
from array import array
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tasks.indexing.models import FileAnalysis
from tasks.indexing.terms import identifier_parts
from vibe.errors import InputError, LockTimeoutError
from vibe.fsutil import file_lock

SCHEMA_VERSION = 3
# BM25 weights of the FTS columns: chunk text, identifier words, names defined in the chunk, file path.
_WEIGHTS = (1.0, 0.6, 6.0, 1.5)
# BM25F weights of the file-level FTS columns: path, names defined in the file, the whole text with its words.
FILE_WEIGHTS = (3.0, 4.0, 1.0)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    blob TEXT NOT NULL,
    status TEXT NOT NULL,
    lang TEXT,
    problem TEXT
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL,
    start_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL,
    symbol TEXT,
    text TEXT NOT NULL,
    parts TEXT NOT NULL,
    defs TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_file ON chunks (file_id);
CREATE TABLE IF NOT EXISTS defs (
    file_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    line INTEGER NOT NULL,
    end_line INTEGER NOT NULL,
    signature TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS defs_file ON defs (file_id);
CREATE TABLE IF NOT EXISTS refs (file_id INTEGER NOT NULL, name TEXT NOT NULL, count INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS refs_file ON refs (file_id);
CREATE TABLE IF NOT EXISTS embeddings (key TEXT PRIMARY KEY, vector BLOB NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5 (
    text, parts, defs, path, content = '', tokenize = "porter unicode61 tokenchars '_'"
);
CREATE VIRTUAL TABLE IF NOT EXISTS files_fts USING fts5 (
    path, names, text, content = '', tokenize = "porter unicode61 tokenchars '_'"
);
"""
# The FTS table is contentless: the text lives once, in `chunks`, and deleting a row hands FTS5 the values it
# indexed (the `parts` and `defs` columns are kept for exactly that). `files_fts` is contentless too: one row
# per file (rowid = files.id) whose values are rebuilt from the file's chunks to delete it (`_file_terms`).
# Its tokenizer stems (`porter`), since file-level matching serves requests written in prose.
_TABLES = ("meta", "files", "chunks", "defs", "refs", "embeddings", "chunks_fts", "files_fts")


@dataclass(frozen=True, slots=True)
class StoreCounts:
    """Totals of a store: indexed files, definitions, chunks and skipped files by reason."""

    files: int
    symbols: int
    chunks: int
    skipped_by_reason: dict[str, int]

    @property
    def skipped(self) -> int:
        """All skipped files."""
        return sum(self.skipped_by_reason.values())


@dataclass(frozen=True, slots=True)
class ChunkRow:
    """A chunk found by a full-text query; `rank` is BM25 (higher is better)."""

    path: str
    start_line: int
    end_line: int
    symbol: str | None
    text: str
    defs: str
    rank: float


@dataclass(frozen=True, slots=True)
class DefRow:
    """A definition, for the repo map. Lines are 1-based and inclusive."""

    path: str
    name: str
    kind: str
    line: int
    end_line: int
    signature: str


class Store(Protocol):
    """What the indexer, the search and the repo map need from a store."""

    location: str

    def write_lock(self, timeout_s: float) -> AbstractContextManager[None]:
        """Hold the store's single-writer lock (waiting up to `timeout_s`)."""

    def file_states(self) -> dict[str, tuple[str, str]]:
        """Every stored file: path -> (blob id, status)."""

    def reset(self) -> None:
        """Remove everything (a full re-index)."""

    def apply(self, results: Sequence[FileAnalysis], removed: Sequence[str]) -> None:
        """Atomically replace the records of `results`' paths and delete those of `removed`."""

    def counts(self) -> StoreCounts:
        """Totals after the last write."""

    def search(self, match: str, limit: int) -> list[ChunkRow]:
        """The best `limit` chunks for an FTS5 MATCH expression."""

    def search_files(self, match: str, limit: int) -> list[tuple[str, float]]:
        """The best `limit` (path, BM25F score) for an FTS5 MATCH expression over whole files."""

    def search_in(self, match: str, paths: Sequence[str]) -> list[ChunkRow]:
        """Every chunk of the files `paths` that matches an FTS5 MATCH expression, best first (a file with no
        matching chunk contributes its first one, with rank 0)."""

    def definitions(self) -> list[DefRow]:
        """Every definition."""

    def references(self) -> list[tuple[str, str, int]]:
        """Every (path, referenced name, count)."""

    def vectors(self, keys: Sequence[str]) -> dict[str, list[float]]:
        """Cached embedding vectors by key (missing keys are absent)."""

    def save_vectors(self, vectors: dict[str, list[float]]) -> None:
        """Cache embedding vectors by key."""

    def close(self) -> None:
        """Release the connection."""


def path_terms(path: str) -> str:
    """What the FTS `path` column holds for a file (the path and its identifier words)."""
    return f"{path} {identifier_parts(path)}"


def _file_terms(path: str, chunks: Sequence[tuple[str, str, str]]) -> tuple[str, str, str]:
    """The `files_fts` values of a file from its chunks' (text, parts, defs), in order: path, names, text."""
    return (
        path_terms(path),
        " ".join(defs for _, _, defs in chunks if defs),
        "\n".join(text for text, _, _ in chunks) + "\n" + " ".join(parts for _, parts, _ in chunks if parts),
    )


class SQLiteStore:
    """The embedded store: one SQLite database file (WAL mode) plus a lock file beside it.

    Args:
        path: the database file.
        create: create the database (and its directory) if missing; readers pass False and get a clear
            error when there is no index yet.
    """

    def __init__(self, path: Path, *, create: bool = False) -> None:
        self.path = path
        self.location = str(path)
        if not create and not path.exists():
            raise InputError(f"no index at {path}: run `vibe index` on the repository first")
        if create:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InputError(f"cannot create the index directory {path.parent}: {exc.strerror}") from exc
        try:
            self._db = sqlite3.connect(path, timeout=60.0, isolation_level=None, check_same_thread=False)
            # WAL is a property of the database file: set once by writers, readers inherit it. Switching needs a
            # lock that a concurrent writer's transaction holds (and busy waits do not cover), so only switch once.
            if create and self._db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute("PRAGMA cache_size = -65536")
        except sqlite3.Error as exc:
            raise InputError(f"cannot open the index {path}: {exc}") from exc
        if not create:
            version = self._version()
            if version != SCHEMA_VERSION:
                self._db.close()
                raise InputError(
                    f"the index at {path} has schema version {version}, this vibe needs {SCHEMA_VERSION}: "
                    "run `vibe index` on the repository to rebuild it"
                )

    # --- schema ------------------------------------------------------------------------------------

    def _version(self) -> int | None:
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.OperationalError:
            return None
        return int(row[0]) if row else None

    def _ensure_schema(self) -> None:
        """Create the tables, or rebuild them when they were written by another schema version (writer only)."""
        version = self._version()
        if version == SCHEMA_VERSION:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for table in _TABLES:
                self._db.execute(f"DROP TABLE IF EXISTS {table}")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?), ('generation', '0')",
                (str(SCHEMA_VERSION),),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    # --- writing -----------------------------------------------------------------------------------

    @contextmanager
    def write_lock(self, timeout_s: float = 600.0) -> Iterator[None]:
        """Hold the single-writer lock of this store for the duration of the block.

        Raises:
            LockTimeoutError: another index run kept the lock for longer than `timeout_s`.
        """
        lock_path = self.path.with_name(self.path.name + ".lock")
        with ExitStack() as stack:
            try:
                stack.enter_context(file_lock(lock_path, timeout_s=timeout_s))
            except TimeoutError as exc:
                raise LockTimeoutError(f"another index run has held {lock_path} for over {timeout_s:.0f}s") from exc
            self._ensure_schema()
            yield

    def file_states(self) -> dict[str, tuple[str, str]]:
        """Every stored file: path -> (blob id, status)."""
        return {path: (blob, status) for path, blob, status in self._db.execute("SELECT path, blob, status FROM files")}

    def reset(self) -> None:
        """Remove every file's records (a full re-index starts from nothing)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for table in ("files", "chunks", "defs", "refs"):
                self._db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names
            self._db.execute("INSERT INTO chunks_fts (chunks_fts) VALUES ('delete-all')")
            self._db.execute("INSERT INTO files_fts (files_fts) VALUES ('delete-all')")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _delete(self, paths: Sequence[str]) -> None:
        db = self._db
        for path in paths:
            row = db.execute("SELECT id FROM files WHERE path = ?", (path,)).fetchone()
            if row is None:
                continue
            file_id = row[0]
            chunks = db.execute(
                "SELECT text, parts, defs FROM chunks WHERE file_id = ? ORDER BY id", (file_id,)
            ).fetchall()
            if chunks:
                db.execute(
                    "INSERT INTO files_fts (files_fts, rowid, path, names, text) VALUES ('delete', ?, ?, ?, ?)",
                    (file_id, *_file_terms(path, chunks)),
                )
            terms = path_terms(path)
            db.execute(
                "INSERT INTO chunks_fts (chunks_fts, rowid, text, parts, defs, path) "
                "SELECT 'delete', id, text, parts, defs, ? FROM chunks WHERE file_id = ?",
                (terms, file_id),
            )
            for table in ("chunks", "defs", "refs"):
                db.execute(f"DELETE FROM {table} WHERE file_id = ?", (file_id,))  # noqa: S608 - fixed names
            db.execute("DELETE FROM files WHERE id = ?", (file_id,))

    def apply(self, results: Sequence[FileAnalysis], removed: Sequence[str]) -> None:
        """Replace the records of `results`' paths and delete those of `removed`, in one transaction."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            self._delete([*removed, *(result.path for result in results)])
            next_chunk = (db.execute("SELECT max(id) FROM chunks").fetchone()[0] or 0) + 1
            chunk_rows: list[tuple[object, ...]] = []
            fts_rows: list[tuple[object, ...]] = []
            file_fts_rows: list[tuple[object, ...]] = []
            def_rows: list[tuple[object, ...]] = []
            ref_rows: list[tuple[object, ...]] = []
            for result in results:
                cursor = db.execute(
                    "INSERT INTO files (path, blob, status, lang, problem) VALUES (?, ?, ?, ?, ?)",
                    (result.path, result.blob, result.status, result.lang, result.problem),
                )
                file_id = cursor.lastrowid
                terms = path_terms(result.path)
                for chunk in result.chunks:
                    chunk_rows.append(
                        (next_chunk, file_id, chunk.start_line, chunk.end_line, chunk.symbol, chunk.text,
                         chunk.parts, chunk.defs)
                    )
                    fts_rows.append((next_chunk, chunk.text, chunk.parts, chunk.defs, terms))
                    next_chunk += 1
                if result.chunks:
                    file_fts_rows.append(
                        (file_id, *_file_terms(result.path, [(c.text, c.parts, c.defs) for c in result.chunks]))
                    )
                def_rows.extend(
                    (file_id, d.name, d.kind, d.start_line + 1, d.end_line + 1, signature)
                    for d, signature in zip(result.defs, result.signatures, strict=True)
                )
                ref_rows.extend((file_id, name, count) for name, count in result.refs)
            db.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?)", chunk_rows)
            db.executemany("INSERT INTO chunks_fts (rowid, text, parts, defs, path) VALUES (?, ?, ?, ?, ?)", fts_rows)
            db.executemany("INSERT INTO files_fts (rowid, path, names, text) VALUES (?, ?, ?, ?)", file_fts_rows)
            db.executemany("INSERT INTO defs VALUES (?, ?, ?, ?, ?, ?)", def_rows)
            db.executemany("INSERT INTO refs VALUES (?, ?, ?)", ref_rows)
            db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # --- reading -----------------------------------------------------------------------------------

    def generation(self) -> int:
        """A number that changes whenever the index does (for caches of derived data)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else 0

    def counts(self) -> StoreCounts:
        """Totals of the store."""
        db = self._db
        by_status = dict(db.execute("SELECT status, count(*) FROM files GROUP BY status").fetchall())
        files = by_status.pop("indexed", 0)
        symbols = db.execute("SELECT count(*) FROM defs").fetchone()[0]
        chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        return StoreCounts(files=files, symbols=symbols, chunks=chunks, skipped_by_reason=by_status)

    def search(self, match: str, limit: int) -> list[ChunkRow]:
        """The best `limit` chunks for an FTS5 MATCH expression, best first."""
        weights = ", ".join(str(w) for w in _WEIGHTS)
        sql = f"""
            SELECT f.path, c.start_line, c.end_line, c.symbol, c.text, c.defs, -hits.rank
            FROM (SELECT rowid, bm25(chunks_fts, {weights}) AS rank FROM chunks_fts
                  WHERE chunks_fts MATCH ? ORDER BY rank LIMIT ?) AS hits
            JOIN chunks AS c ON c.id = hits.rowid
            JOIN files AS f ON f.id = c.file_id
            ORDER BY hits.rank
        """  # noqa: S608 - the weights are constants
        try:
            rows = self._db.execute(sql, (match, limit)).fetchall()
        except sqlite3.OperationalError as exc:
            raise InputError(f"cannot search for {match!r}: {exc}") from exc
        return [ChunkRow(*row) for row in rows]

    def search_files(self, match: str, limit: int) -> list[tuple[str, float]]:
        """The best `limit` files for an FTS5 MATCH expression (BM25F over path, names and text), best first."""
        weights = ", ".join(str(w) for w in FILE_WEIGHTS)
        sql = f"""
            SELECT f.path, -hits.rank
            FROM (SELECT rowid, bm25(files_fts, {weights}) AS rank FROM files_fts
                  WHERE files_fts MATCH ? ORDER BY rank LIMIT ?) AS hits
            JOIN files AS f ON f.id = hits.rowid
        """  # noqa: S608 - the weights are constants
        try:
            return list(self._db.execute(sql, (match, limit)).fetchall())
        except sqlite3.OperationalError as exc:
            raise InputError(f"cannot search for {match!r}: {exc}") from exc

    def search_in(self, match: str, paths: Sequence[str]) -> list[ChunkRow]:
        """Every chunk of the files `paths` that matches an FTS5 MATCH expression, best first; a file with no
        matching chunk contributes its first one, with rank 0."""
        if not paths:
            return []
        weights = ", ".join(str(w) for w in _WEIGHTS)
        # A file's chunks have consecutive ids (`apply` writes them in one run), and FTS5 answers a rowid range
        # from its index, where an IN list would make it score every match of the whole repository.
        sql = f"""
            SELECT rowid, bm25(chunks_fts, {weights}) FROM chunks_fts
            WHERE chunks_fts MATCH ? AND rowid BETWEEN ? AND ?
        """  # noqa: S608 - the weights are constants
        rows: list[ChunkRow] = []
        try:
            for path in paths:
                span = self._db.execute(
                    "SELECT min(c.id), max(c.id) FROM chunks AS c JOIN files AS f ON f.id = c.file_id "
                    "WHERE f.path = ?",
                    (path,),
                ).fetchone()
                if span is None or span[0] is None:
                    continue
                ranks = dict(self._db.execute(sql, (match, *span)).fetchall())
                # A file matched by its stemmed words alone still shows something: its first chunk, ranked last.
                ids = sorted(ranks, key=ranks.__getitem__) if ranks else [span[0]]
                for chunk_id in ids:
                    start, end, symbol, text, defs = self._db.execute(
                        "SELECT start_line, end_line, symbol, text, defs FROM chunks WHERE id = ?", (chunk_id,)
                    ).fetchone()
                    rows.append(ChunkRow(path, start, end, symbol, text, defs, -ranks.get(chunk_id, -0.0)))
        except sqlite3.OperationalError as exc:
            raise InputError(f"cannot search for {match!r}: {exc}") from exc
        rows.sort(key=lambda row: -row.rank)
        return rows

    def definitions(self) -> list[DefRow]:
        """Every definition with its file."""
        return [
            DefRow(*row)
            for row in self._db.execute(
                "SELECT f.path, d.name, d.kind, d.line, d.end_line, d.signature FROM defs AS d "
                "JOIN files AS f ON f.id = d.file_id"
            )
        ]

    def references(self) -> list[tuple[str, str, int]]:
        """Every (path, referenced name, count)."""
        return list(
            self._db.execute("SELECT f.path, r.name, r.count FROM refs AS r JOIN files AS f ON f.id = r.file_id")
        )

    def vectors(self, keys: Sequence[str]) -> dict[str, list[float]]:
        """Cached embedding vectors by key (missing keys are absent)."""
        found: dict[str, list[float]] = {}
        for start in range(0, len(keys), 500):
            part = list(keys[start : start + 500])
            marks = ", ".join("?" * len(part))
            for key, blob in self._db.execute(
                f"SELECT key, vector FROM embeddings WHERE key IN ({marks})", part  # noqa: S608 - placeholders
            ):
                found[key] = array("f", blob).tolist()
        return found

    def save_vectors(self, vectors: dict[str, list[float]]) -> None:
        """Cache embedding vectors (float32) by key; the cache survives re-indexing (keys hash the text)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(
                "INSERT OR REPLACE INTO embeddings (key, vector) VALUES (?, ?)",
                [(key, array("f", vector).tobytes()) for key, vector in vectors.items()],
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

