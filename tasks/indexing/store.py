"""Where the index lives: a small `Store` interface and its embedded SQLite implementation.

Analyses are stored by content: a file's symbols, chunks and terms are keyed by its path and git blob id, and
each repository (each worktree: its git directory is its key) only maps its paths to those contents. One
database can therefore serve many repositories: a second clone, a fork, a worktree or another branch of the
same code links the contents already analysed and analyses only the blobs it has not seen (the way GitHub's
code search deduplicates by blob). The default database is shared by every repository of the user
(`<VIBE_HOME>/index/index.sqlite`, see `tasks.indexing.index.store_path`). A content no repository maps any
more is deleted in the same transaction that unmapped it, so no repository's writes ever remove what another
one still maps.

Writers hold an exclusive advisory lock on a side file for the whole run, so two overlapping index runs (of
one repository, or of two sharing the store) take turns: the second one waits, then sees what the first one
stored and does only what is left. Each batch of files is written in one transaction, so an interrupted run
leaves a consistent index that the next run completes. WAL mode lets searches read while a run writes.

The schema carries a version; a store written by another version is rebuilt from scratch by the next index
run (the index is derived data), and readers are told to re-index.

A server-backed store shared by many workers can implement the same `Store` protocol.
"""

from __future__ import annotations

import sqlite3
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tasks.indexing.models import FileAnalysis
from tasks.indexing.terms import identifier_parts
from vibe.errors import InputError, LockTimeoutError
from vibe.fsutil import file_lock

SCHEMA_VERSION = 5
# BM25 weights of the FTS columns: chunk text, identifier words, names defined in the chunk, file path.
_WEIGHTS = (1.0, 0.6, 6.0, 1.5)
# BM25F weights of the file-level FTS columns: path, names defined in the file, the whole text with its words.
FILE_WEIGHTS = (3.0, 4.0, 1.0)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS repos (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS contents (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    blob TEXT NOT NULL,
    status TEXT NOT NULL,
    lang TEXT,
    problem TEXT,
    UNIQUE (path, blob)
);
CREATE TABLE IF NOT EXISTS files (
    repo_id INTEGER NOT NULL,
    path TEXT NOT NULL,
    content_id INTEGER NOT NULL,
    PRIMARY KEY (repo_id, path)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS files_content ON files (content_id);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    content_id INTEGER NOT NULL,
    start_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL,
    symbol TEXT,
    text TEXT NOT NULL,
    parts TEXT NOT NULL,
    defs TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_content ON chunks (content_id);
CREATE TABLE IF NOT EXISTS defs (
    content_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    line INTEGER NOT NULL,
    end_line INTEGER NOT NULL,
    signature TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS defs_content ON defs (content_id);
CREATE TABLE IF NOT EXISTS refs (content_id INTEGER NOT NULL, name TEXT NOT NULL, count INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS refs_content ON refs (content_id);
CREATE TABLE IF NOT EXISTS embeddings (key TEXT PRIMARY KEY, vector BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS vector_keys (
    chunk_id INTEGER NOT NULL,
    model TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (chunk_id, model)
) WITHOUT ROWID;
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5 (
    text, parts, defs, path, content = '', tokenize = "porter unicode61 tokenchars '_'"
);
CREATE VIRTUAL TABLE IF NOT EXISTS files_fts USING fts5 (
    path, names, text, content = '', tokenize = "porter unicode61 tokenchars '_'"
);
"""
# The FTS tables are contentless: the text lives once, in `chunks`, and deleting a row hands FTS5 the values it
# indexed (the `parts` and `defs` columns are kept for exactly that). `files_fts` has one row per content
# (rowid = contents.id) whose values are rebuilt from the content's chunks to delete it (`_file_terms`). Both
# stem (`porter`): requests are written in prose ("dictionaries", "parsing").
# The path is part of a content's key because the analysis depends on it (language, the path column).
# `vector_keys` links a chunk to its vector under a model (the `embeddings` key, which hashes the model and the
# text), so a search finds which chunks still need a vector without reading and hashing every chunk's text.
_TABLES = (
    "meta", "repos", "contents", "files", "chunks", "defs", "refs", "embeddings", "vector_keys", "chunks_fts",
    "files_fts",
)


@dataclass(frozen=True, slots=True)
class StoreCounts:
    """Totals of a store: indexed files, definitions, chunks, skipped files by reason and each (path, reason)."""

    files: int
    symbols: int
    chunks: int
    skipped_by_reason: dict[str, int]
    skipped_files: tuple[tuple[str, str], ...] = ()

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

    def reuse(self, files: Sequence[tuple[str, str]]) -> set[str]:
        """Map the (path, blob id) pairs whose content is already analysed (by any repository of the store) to
        this repository, without analysing them again; returns the paths mapped."""

    def repositories(self) -> list[str]:
        """The keys of every repository the store holds a path map of."""

    def forget(self, repository: str) -> None:
        """Drop another repository's path map, and the contents no repository maps any more."""

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

    def unembedded(self, model: str) -> list[tuple[int, ChunkRow]]:
        """This repository's chunks (id, row) that have no vector under `model` yet."""

    def link_vectors(self, model: str, links: Sequence[tuple[int, str, str]]) -> None:
        """Link (chunk id, vector key, chunk text) under `model`; a chunk whose text changed meanwhile is left out."""

    def vector_rows(self, model: str) -> tuple[list[int], list[bytes]]:
        """This repository's chunk ids with a vector under `model`, and those vectors (float32 bytes)."""

    def chunks_by_id(self, ids: Sequence[int]) -> dict[int, ChunkRow]:
        """This repository's chunks by id (rank 0); ids of other repositories' chunks are absent."""

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
        repository: the key of the repository this connection reads and writes (`repository_key`); one
            database holds the path maps of any number of repositories over one set of analysed contents.
        create: create the database (and its directory) if missing; readers pass False and get a clear
            error when there is no index yet.
    """

    def __init__(self, path: Path, *, repository: str, create: bool = False) -> None:
        self.path = path
        self.location = str(path)
        self.repository = repository
        self._repo_id: int | None = None
        if not create and not path.exists():
            raise InputError(
                f"no index at {path}: run `vibe index` on the repository first (with the same VIBE_HOME)"
            )
        if create:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InputError(f"cannot create the index directory {path.parent}: {exc.strerror}") from exc
        try:
            self._db = sqlite3.connect(path, timeout=60.0, isolation_level=None, check_same_thread=False)
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
            row = self._db.execute("SELECT id FROM repos WHERE key = ?", (repository,)).fetchone()
            if row is None:
                self._db.close()
                raise InputError(
                    f"the index at {path} has no index of {repository}: run `vibe index` on it first "
                    "(with the same VIBE_HOME)"
                )
            self._repo_id = int(row[0])

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
        if version != SCHEMA_VERSION:
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
        self._db.execute("INSERT OR IGNORE INTO repos (key) VALUES (?)", (self.repository,))
        self._repo_id = int(self._db.execute("SELECT id FROM repos WHERE key = ?", (self.repository,)).fetchone()[0])

    @property
    def _repo(self) -> int:
        if self._repo_id is None:
            raise InputError(f"the index at {self.path} is not open for writing: take its write lock first")
        return self._repo_id

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
            # WAL is a property of the database file, set once by a writer (readers inherit it); switching needs a
            # lock that busy waits do not cover, so it is done under the writer lock, and only once.
            if self._db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                self._db.execute("PRAGMA journal_mode = WAL")
            self._ensure_schema()
            yield

    def file_states(self) -> dict[str, tuple[str, str]]:
        """Every file of this repository: path -> (blob id, status)."""
        return {
            path: (blob, status)
            for path, blob, status in self._db.execute(
                "SELECT f.path, c.blob, c.status FROM files AS f JOIN contents AS c ON c.id = f.content_id "
                "WHERE f.repo_id = ?",
                (self._repo,),
            )
        }

    def reset(self) -> None:
        """Unmap every file of this repository (a full re-index starts from nothing; shared contents stay for
        the other repositories, and are analysed again in place as the run meets them)."""
        self._transaction(lambda: self._unmap([path for path, in self._db.execute(
            "SELECT path FROM files WHERE repo_id = ?", (self._repo,))]))

    def _transaction(self, work: Callable[[], object]) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            work()
            self._db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _unmap(self, paths: Sequence[str], repo_id: int | None = None) -> None:
        """Remove `paths` from a repository's map (default: this one), and the contents nothing maps any more."""
        db = self._db
        repo = self._repo if repo_id is None else repo_id
        orphans: set[int] = set()
        for path in paths:
            row = db.execute("SELECT content_id FROM files WHERE repo_id = ? AND path = ?", (repo, path)).fetchone()
            if row is not None:
                db.execute("DELETE FROM files WHERE repo_id = ? AND path = ?", (repo, path))
                orphans.add(row[0])
        for content_id in orphans:
            if db.execute("SELECT 1 FROM files WHERE content_id = ? LIMIT 1", (content_id,)).fetchone() is None:
                self._clear(content_id)
                db.execute("DELETE FROM contents WHERE id = ?", (content_id,))

    def _clear(self, content_id: int) -> None:
        """Delete a content's chunks, definitions, references and full-text rows (the content row stays)."""
        db = self._db
        row = db.execute("SELECT path FROM contents WHERE id = ?", (content_id,)).fetchone()
        if row is None:
            return
        path = row[0]
        chunks = db.execute(
            "SELECT text, parts, defs FROM chunks WHERE content_id = ? ORDER BY id", (content_id,)
        ).fetchall()
        if chunks:
            db.execute(
                "INSERT INTO files_fts (files_fts, rowid, path, names, text) VALUES ('delete', ?, ?, ?, ?)",
                (content_id, *_file_terms(path, chunks)),
            )
            db.execute(
                "INSERT INTO chunks_fts (chunks_fts, rowid, text, parts, defs, path) "
                "SELECT 'delete', id, text, parts, defs, ? FROM chunks WHERE content_id = ?",
                (path_terms(path), content_id),
            )
        db.execute(
            "DELETE FROM vector_keys WHERE chunk_id IN (SELECT id FROM chunks WHERE content_id = ?)", (content_id,)
        )
        for table in ("chunks", "defs", "refs"):
            db.execute(f"DELETE FROM {table} WHERE content_id = ?", (content_id,))  # noqa: S608 - fixed names

    def apply(self, results: Sequence[FileAnalysis], removed: Sequence[str]) -> None:
        """Replace the records of `results`' paths and delete those of `removed`, in one transaction.

        A result whose (path, blob) content is already stored (for another repository, or before a full
        re-index) replaces that content's analysis in place, so every repository mapping it sees the new one.
        """
        self._transaction(lambda: self._apply(results, removed))

    def _apply(self, results: Sequence[FileAnalysis], removed: Sequence[str]) -> None:
        db = self._db
        self._unmap([*removed, *(result.path for result in results)])
        next_chunk = (db.execute("SELECT max(id) FROM chunks").fetchone()[0] or 0) + 1
        chunk_rows: list[tuple[object, ...]] = []
        fts_rows: list[tuple[object, ...]] = []
        file_fts_rows: list[tuple[object, ...]] = []
        def_rows: list[tuple[object, ...]] = []
        ref_rows: list[tuple[object, ...]] = []
        map_rows: list[tuple[object, ...]] = []
        for result in results:
            row = db.execute(
                "SELECT id FROM contents WHERE path = ? AND blob = ?", (result.path, result.blob)
            ).fetchone()
            if row is not None:
                content_id = int(row[0])
                self._clear(content_id)
                db.execute(
                    "UPDATE contents SET status = ?, lang = ?, problem = ? WHERE id = ?",
                    (result.status, result.lang, result.problem, content_id),
                )
            else:
                cursor = db.execute(
                    "INSERT INTO contents (path, blob, status, lang, problem) VALUES (?, ?, ?, ?, ?)",
                    (result.path, result.blob, result.status, result.lang, result.problem),
                )
                content_id = int(cursor.lastrowid or 0)
            map_rows.append((self._repo, result.path, content_id))
            terms = path_terms(result.path)
            # A content's chunks get consecutive ids: `search_in` reads them as one rowid range.
            for chunk in result.chunks:
                chunk_rows.append(
                    (next_chunk, content_id, chunk.start_line, chunk.end_line, chunk.symbol, chunk.text,
                     chunk.parts, chunk.defs)
                )
                fts_rows.append((next_chunk, chunk.text, chunk.parts, chunk.defs, terms))
                next_chunk += 1
            if result.chunks:
                file_fts_rows.append(
                    (content_id, *_file_terms(result.path, [(c.text, c.parts, c.defs) for c in result.chunks]))
                )
            def_rows.extend(
                (content_id, d.name, d.kind, d.start_line + 1, d.end_line + 1, signature)
                for d, signature in zip(result.defs, result.signatures, strict=True)
            )
            ref_rows.extend((content_id, name, count) for name, count in result.refs)
        db.executemany("INSERT INTO files VALUES (?, ?, ?)", map_rows)
        db.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?)", chunk_rows)
        db.executemany("INSERT INTO chunks_fts (rowid, text, parts, defs, path) VALUES (?, ?, ?, ?, ?)", fts_rows)
        db.executemany("INSERT INTO files_fts (rowid, path, names, text) VALUES (?, ?, ?, ?)", file_fts_rows)
        db.executemany("INSERT INTO defs VALUES (?, ?, ?, ?, ?, ?)", def_rows)
        db.executemany("INSERT INTO refs VALUES (?, ?, ?)", ref_rows)

    def reuse(self, files: Sequence[tuple[str, str]]) -> set[str]:
        """Map to this repository the (path, blob id) pairs whose content is already analysed; returns their paths.

        Unreadable files (no blob id) are never reused: they are retried on every run.
        """
        db = self._db
        found: dict[str, int] = {}
        for path, blob in files:
            if blob:
                row = db.execute("SELECT id FROM contents WHERE path = ? AND blob = ?", (path, blob)).fetchone()
                if row is not None:
                    found[path] = int(row[0])
        if found:
            def link() -> None:
                self._unmap(list(found))
                db.executemany(
                    "INSERT INTO files VALUES (?, ?, ?)", [(self._repo, path, cid) for path, cid in found.items()]
                )

            self._transaction(link)
        return set(found)

    def repositories(self) -> list[str]:
        """The keys of every repository with a path map in this store."""
        return [key for key, in self._db.execute("SELECT key FROM repos ORDER BY id")]

    def forget(self, repository: str) -> None:
        """Drop `repository`'s path map in one transaction; contents other repositories map stay untouched."""
        row = self._db.execute("SELECT id FROM repos WHERE key = ?", (repository,)).fetchone()
        if row is None or int(row[0]) == self._repo_id:
            return
        repo_id = int(row[0])

        def drop() -> None:
            paths = [path for path, in self._db.execute("SELECT path FROM files WHERE repo_id = ?", (repo_id,))]
            self._unmap(paths, repo_id)
            self._db.execute("DELETE FROM repos WHERE id = ?", (repo_id,))

        self._transaction(drop)

    # --- reading -----------------------------------------------------------------------------------

    def generation(self) -> int:
        """A number that changes whenever the index does (for caches of derived data)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else 0

    def counts(self) -> StoreCounts:
        """Totals of this repository."""
        db = self._db
        repo = self._repo
        skipped_files = tuple(db.execute(
            "SELECT f.path, c.status FROM files AS f JOIN contents AS c ON c.id = f.content_id "
            "WHERE f.repo_id = ? AND c.status != 'indexed' ORDER BY f.path", (repo,)
        ).fetchall())
        by_status: dict[str, int] = {}
        for _, status in skipped_files:
            by_status[status] = by_status.get(status, 0) + 1
        files = db.execute(
            "SELECT count(*) FROM files AS f JOIN contents AS c ON c.id = f.content_id "
            "WHERE f.repo_id = ? AND c.status = 'indexed'", (repo,)
        ).fetchone()[0]
        symbols = db.execute(
            "SELECT count(*) FROM files AS f JOIN defs AS d ON d.content_id = f.content_id WHERE f.repo_id = ?", (repo,)
        ).fetchone()[0]
        chunks = db.execute(
            "SELECT count(*) FROM files AS f JOIN chunks AS c ON c.content_id = f.content_id WHERE f.repo_id = ?",
            (repo,),
        ).fetchone()[0]
        return StoreCounts(
            files=files, symbols=symbols, chunks=chunks, skipped_by_reason=by_status, skipped_files=skipped_files
        )

    def search(self, match: str, limit: int) -> list[ChunkRow]:
        """The best `limit` chunks of this repository for an FTS5 MATCH expression, best first."""
        weights = ", ".join(str(w) for w in _WEIGHTS)
        sql = f"""
            SELECT f.path, c.start_line, c.end_line, c.symbol, c.text, c.defs, -bm25(chunks_fts, {weights}) AS score
            FROM chunks_fts
            JOIN chunks AS c ON c.id = chunks_fts.rowid
            JOIN files AS f ON f.content_id = c.content_id AND f.repo_id = ?
            WHERE chunks_fts MATCH ? ORDER BY score DESC LIMIT ?
        """  # noqa: S608 - the weights are constants
        try:
            rows = self._db.execute(sql, (self._repo, match, limit)).fetchall()
        except sqlite3.OperationalError as exc:
            raise InputError(f"cannot search for {match!r}: {exc}") from exc
        return [ChunkRow(*row) for row in rows]

    def search_files(self, match: str, limit: int) -> list[tuple[str, float]]:
        """The best `limit` files of this repository for an FTS5 MATCH expression (BM25F over path, names and
        text), best first."""
        weights = ", ".join(str(w) for w in FILE_WEIGHTS)
        sql = f"""
            SELECT f.path, -bm25(files_fts, {weights}) AS score
            FROM files_fts JOIN files AS f ON f.content_id = files_fts.rowid AND f.repo_id = ?
            WHERE files_fts MATCH ? ORDER BY score DESC LIMIT ?
        """  # noqa: S608 - the weights are constants
        try:
            return list(self._db.execute(sql, (self._repo, match, limit)).fetchall())
        except sqlite3.OperationalError as exc:
            raise InputError(f"cannot search for {match!r}: {exc}") from exc

    def search_in(self, match: str, paths: Sequence[str]) -> list[ChunkRow]:
        """Every chunk of the files `paths` that matches an FTS5 MATCH expression, best first; a file with no
        matching chunk contributes its first one, with rank 0."""
        weights = ", ".join(str(w) for w in _WEIGHTS)
        # A content's chunks have consecutive ids (`apply` writes them in one run), and FTS5 answers a rowid
        # range from its index, where an IN list would make it score every match of the whole store.
        sql = f"""
            SELECT rowid, bm25(chunks_fts, {weights}) FROM chunks_fts
            WHERE chunks_fts MATCH ? AND rowid BETWEEN ? AND ?
        """  # noqa: S608 - the weights are constants
        rows: list[ChunkRow] = []
        try:
            for path in paths:
                span = self._db.execute(
                    "SELECT min(c.id), max(c.id) FROM files AS f JOIN chunks AS c ON c.content_id = f.content_id "
                    "WHERE f.repo_id = ? AND f.path = ?",
                    (self._repo, path),
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
        """Every definition of this repository with its file."""
        return [
            DefRow(*row)
            for row in self._db.execute(
                "SELECT f.path, d.name, d.kind, d.line, d.end_line, d.signature FROM files AS f "
                "JOIN defs AS d ON d.content_id = f.content_id WHERE f.repo_id = ?",
                (self._repo,),
            )
        ]

    def references(self) -> list[tuple[str, str, int]]:
        """Every (path, referenced name, count) of this repository."""
        return list(
            self._db.execute(
                "SELECT f.path, r.name, r.count FROM files AS f JOIN refs AS r ON r.content_id = f.content_id "
                "WHERE f.repo_id = ?",
                (self._repo,),
            )
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

    def unembedded(self, model: str) -> list[tuple[int, ChunkRow]]:
        """This repository's chunks (id, row with rank 0) that have no vector under `model` yet, in id order."""
        rows = self._db.execute(
            "SELECT c.id, f.path, c.start_line, c.end_line, c.symbol, c.text, c.defs, 0.0 FROM files AS f "
            "JOIN chunks AS c ON c.content_id = f.content_id "
            "LEFT JOIN vector_keys AS v ON v.chunk_id = c.id AND v.model = ? "
            "WHERE f.repo_id = ? AND v.key IS NULL ORDER BY c.id",
            (model, self._repo),
        )
        return [(row[0], ChunkRow(*row[1:])) for row in rows]

    def link_vectors(self, model: str, links: Sequence[tuple[int, str, str]]) -> None:
        """Link (chunk id, vector key, the chunk's text) under `model`, in one transaction.

        Searches link without the writer lock: a chunk an index run replaced meanwhile (its id reused by
        another text) is left out rather than linked to a vector of other text.
        """
        if not links:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(
                "INSERT OR REPLACE INTO vector_keys (chunk_id, model, key) "
                "SELECT id, ?, ? FROM chunks WHERE id = ? AND text = ?",
                [(model, key, chunk_id, text) for chunk_id, key, text in links],
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def vector_rows(self, model: str) -> tuple[list[int], list[bytes]]:
        """This repository's chunk ids that have a vector under `model`, and the vectors (float32 bytes)."""
        ids: list[int] = []
        blobs: list[bytes] = []
        for chunk_id, blob in self._db.execute(
            "SELECT c.id, e.vector FROM files AS f JOIN chunks AS c ON c.content_id = f.content_id "
            "JOIN vector_keys AS v ON v.chunk_id = c.id AND v.model = ? JOIN embeddings AS e ON e.key = v.key "
            "WHERE f.repo_id = ?",
            (model, self._repo),
        ):
            ids.append(chunk_id)
            blobs.append(blob)
        return ids, blobs

    def chunks_by_id(self, ids: Sequence[int]) -> dict[int, ChunkRow]:
        """This repository's chunks by id (rank 0); ids that are no chunk of this repository are absent."""
        found: dict[int, ChunkRow] = {}
        for chunk_id in ids:
            row = self._db.execute(
                "SELECT f.path, c.start_line, c.end_line, c.symbol, c.text, c.defs, 0.0 FROM chunks AS c "
                "JOIN files AS f ON f.content_id = c.content_id AND f.repo_id = ? WHERE c.id = ?",
                (self._repo, chunk_id),
            ).fetchone()
            if row is not None:
                found[chunk_id] = ChunkRow(*row)
        return found

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

