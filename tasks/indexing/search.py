"""Search a repository's index: BM25 over identifier-aware terms, with a boost for definitions.

Hybrid when an embedder is given: the files closest in meaning to the query, by exact cosine kNN over the
vectors of all the repository's chunks (`tasks.indexing.vectors`), are fused with the lexical file ranking by
reciprocal rank fusion, so a file that shares no word with the query can be found. Vectors are kept in the
index store under a key that hashes the model and the text, so a chunk is embedded once. If the embedding
endpoint fails, the search answers with the lexical ranking and logs why: embeddings improve search, they
never break it.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.indexing.index import open_store, store_path
from tasks.indexing.models import FileHit, SearchHit
from tasks.indexing.rank import Query, parse_query, rank_files
from tasks.indexing.scan import find_repository
from tasks.indexing.store import ChunkRow, Store
from tasks.indexing.terms import fts_match, split_identifier
from tasks.indexing.vectors import nearest_files
from vibe.errors import ExternalError, InputError

if TYPE_CHECKING:
    from providers.embeddings import Embedder

_log = logging.getLogger(__name__)

# A chunk that is the definition of a queried identifier outranks chunks that merely mention it.
_DEFINES_SYMBOL = 2.0
_DEFINES_NAME = 1.4
_NAMED_BY_WORDS = 2.0
# Name words that say nothing on their own (`get_in` is named by "get").
_NAME_FILLER = frozenset({"in", "of", "to", "by", "on", "at", "is", "as", "or", "and", "for", "from", "with"})
# Files of each side that hybrid search fuses, at least.
_MIN_FILES = 20
# Reciprocal rank fusion's constant (the usual 60): ranks matter, raw scores of the two kinds never mix.
_RRF_K = 60


def _normal(name: str) -> str:
    """One spelling for every style of an identifier: `parseArgs`, `parse_args`, `ParseArgs` -> `parseargs`."""
    return "".join(split_identifier(name))


def _boost(row: ChunkRow, wanted: set[str], words: frozenset[str] = frozenset()) -> float:
    if row.symbol is not None and _normal(row.symbol.rsplit(".", 1)[-1]) in wanted:
        return _DEFINES_SYMBOL
    # `get_in` for "get value from nested dictionary": a name made of the request's words.
    if row.symbol is not None and words:
        parts = [part for part in split_identifier(row.symbol.rsplit(".", 1)[-1]) if part not in _NAME_FILLER]
        if parts and all(part in words for part in parts):
            return _NAMED_BY_WORDS
    if any(_normal(name) in wanted for name in row.defs.split()):
        return _DEFINES_NAME
    return 1.0


def _fuse_files(
    lexical: list[tuple[str, float]], meaning: list[tuple[str, ChunkRow]], limit: int
) -> list[tuple[str, float]]:
    """Reciprocal rank fusion of the lexical file ranking and the files closest in meaning, best first."""
    fused: dict[str, float] = {}
    for rank, (path, _) in enumerate(lexical):
        fused[path] = 1.0 / (_RRF_K + rank + 1)
    meaning_rank = {path: rank for rank, (path, _) in enumerate(meaning)}
    for path, rank in meaning_rank.items():
        fused[path] = fused.get(path, 0.0) + 1.0 / (_RRF_K + rank + 1)
    # Equal fused scores (swapped ranks) go to the closer meaning.
    order = sorted(fused, key=lambda path: (-fused[path], meaning_rank.get(path, len(meaning))))
    return [(path, fused[path]) for path in order[:limit]]


def _best_chunks(
    store: Store,
    files: list[tuple[str, float]],
    identifiers: list[str],
    wanted: set[str],
    k: int,
    by_meaning: dict[str, ChunkRow] | None = None,
) -> list[tuple[float, ChunkRow]]:
    """The ranked files' best chunks: each file's best first, in file order; then further chunks of those files
    (by their share of the file's best) while fewer than `k` files matched. A file no chunk of which matches
    the words shows its chunk closest in meaning (`by_meaning`), when it has one."""
    if not files:
        return []
    rows = store.search_in(fts_match(identifiers), [path for path, _ in files])
    words = frozenset(word for identifier in identifiers for word in split_identifier(identifier))
    by_file: dict[str, list[tuple[float, ChunkRow]]] = {}
    for row in rows:
        by_file.setdefault(row.path, []).append((row.rank * _boost(row, wanted, words), row))
    first: list[tuple[float, ChunkRow]] = []
    rest: list[tuple[float, ChunkRow]] = []
    for path, score in files:
        chunks = sorted(by_file.get(path, ()), key=lambda pair: -pair[0])
        closest = (by_meaning or {}).get(path)
        if closest is not None and (not chunks or chunks[0][1].rank <= 0.0):
            chunks = [(score, closest)]
        if not chunks:
            continue
        best = chunks[0][0] or 1.0
        first.append((score, chunks[0][1]))
        rest.extend((score * chunk_score / best, row) for chunk_score, row in chunks[1:])
    if len(first) < k:
        rest.sort(key=lambda pair: -pair[0])
        first.extend(rest[: k - len(first)])
    return first


def search_code(
    repo: Path,
    query: str,
    *,
    k: int = 10,
    store_dir: Path | None = None,
    embedder: Embedder | None = None,
) -> list[SearchHit]:
    """The `k` chunks of the repository's index that best match `query`.

    The query may be words or identifiers in any style: `parseArgs`, `parse_args` and `parse args` all find
    `parse_args`. Chunks that define a queried identifier rank above chunks that only use it.

    Args:
        repo: any directory inside the indexed repository.
        query: what to look for.
        k: how many hits to return (at least 1).
        store_dir: directory of the store, if not the default.
        embedder: makes the search hybrid (see the module's docstring): the first hybrid search of a repository
            embeds its chunks that have no vector yet; None: lexical only.

    Returns:
        Hits, best first; paths are relative to the repository root.

    Raises:
        InputError: an empty query, `k` < 1, not a git repository, or no index yet.
    """
    parsed, identifiers, wanted = _read_query(query, k)
    repository = find_repository(repo)
    path = store_path(repository, store_dir)
    try:
        with open_store(repository, store_dir) as store:
            # Fusion looks at more files of each side than are returned; the lexical order alone needs `k` files.
            files = rank_files(store, parsed, limit=max(k, _MIN_FILES) if embedder is not None else k)
            meaning: list[tuple[str, ChunkRow]] = []
            if embedder is not None:
                try:
                    meaning = nearest_files(store, embedder, query, max(k, _MIN_FILES))
                except ExternalError as exc:
                    _log.warning("embeddings unavailable (%s): lexical ranking only", exc)
            files = _fuse_files(files, meaning, max(k, _MIN_FILES)) if meaning else files[:k]
            scored = _best_chunks(store, files, identifiers, wanted, k, dict(meaning))
    except sqlite3.Error as exc:
        raise InputError(f"the index at {path} cannot be read ({exc}): run `vibe index --full`") from exc
    return [_hit(score, row) for score, row in scored[:k]]


def search_files(
    repo: Path, query: str, *, k: int = 10, lines: int = 2, store_dir: Path | None = None
) -> list[FileHit]:
    """The `k` files of the repository that best match `query`, each with its best chunks.

    The ranking is `search_code`'s (files first: see `tasks.indexing.rank`); this is its file-level view, for
    `vibe search --files` and for callers that read whole files.

    Args:
        repo: any directory inside the indexed repository.
        query: what to look for.
        k: how many files (at least 1).
        lines: how many of each file's best chunks to return with it (at least 1).
        store_dir: directory of the store, if not the default.

    Raises:
        InputError: an empty query, `k` or `lines` < 1, not a git repository, or no index yet.
    """
    if lines < 1:
        raise InputError(f"lines must be at least 1, got {lines}")
    parsed, identifiers, wanted = _read_query(query, k)
    repository = find_repository(repo)
    path = store_path(repository, store_dir)
    try:
        with open_store(repository, store_dir) as store:
            files = rank_files(store, parsed, limit=k)
            rows = store.search_in(fts_match(identifiers), [file for file, _ in files])
    except sqlite3.Error as exc:
        raise InputError(f"the index at {path} cannot be read ({exc}): run `vibe index --full`") from exc
    words = frozenset(word for identifier in identifiers for word in split_identifier(identifier))
    by_file: dict[str, list[tuple[float, ChunkRow]]] = {}
    for row in rows:
        by_file.setdefault(row.path, []).append((row.rank * _boost(row, wanted, words), row))
    found: list[FileHit] = []
    for file, score in files:
        chunks = sorted(by_file.get(file, ()), key=lambda pair: -pair[0])[:lines]
        found.append(FileHit(path=file, score=score, hits=tuple(_hit(s, row) for s, row in chunks)))
    return found


def _read_query(query: str, k: int) -> tuple[Query, list[str], set[str]]:
    """The query read for ranking, its terms, and the normal forms of identifiers it may name."""
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    parsed = parse_query(query)
    if not parsed.terms:
        raise InputError("the query has no words to search for: give identifiers or words")
    identifiers = [term.text for term in parsed.terms]
    wanted = {_normal(identifier) for identifier in identifiers}
    # `parse args` asks for `parse_args` as much as `parseArgs` does.
    if len(identifiers) > 1:
        wanted.add("".join(_normal(identifier) for identifier in identifiers))
    wanted.discard("")
    return parsed, identifiers, wanted


def _hit(score: float, row: ChunkRow) -> SearchHit:
    return SearchHit(
        path=row.path, start_line=row.start_line, end_line=row.end_line, symbol=row.symbol, score=score, text=row.text
    )
