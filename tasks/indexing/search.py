"""Search a repository's index: BM25 over identifier-aware terms, with a boost for definitions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tasks.indexing.index import store_path
from tasks.indexing.models import SearchHit
from tasks.indexing.scan import find_repository
from tasks.indexing.store import ChunkRow, SQLiteStore
from tasks.indexing.terms import fts_match, query_identifiers, split_identifier
from vibe.errors import InputError

# A chunk that is the definition of a queried identifier outranks chunks that merely mention it.
_DEFINES_SYMBOL = 2.0
_DEFINES_NAME = 1.4
# FTS5 ranks this many candidates per wanted hit before the boost re-orders them.
_CANDIDATES_PER_HIT = 4


def _normal(name: str) -> str:
    """One spelling for every style of an identifier: `parseArgs`, `parse_args`, `ParseArgs` -> `parseargs`."""
    return "".join(split_identifier(name))


def _boost(row: ChunkRow, wanted: set[str]) -> float:
    if row.symbol is not None and _normal(row.symbol.rsplit(".", 1)[-1]) in wanted:
        return _DEFINES_SYMBOL
    if any(_normal(name) in wanted for name in row.defs.split()):
        return _DEFINES_NAME
    return 1.0


def search_code(repo: Path, query: str, *, k: int = 10, store_dir: Path | None = None) -> list[SearchHit]:
    """The `k` chunks of the repository's index that best match `query`.

    The query may be words or identifiers in any style: `parseArgs`, `parse_args` and `parse args` all find
    `parse_args`. Chunks that define a queried identifier rank above chunks that only use it.

    Args:
        repo: any directory inside the indexed repository.
        query: what to look for.
        k: how many hits to return (at least 1).
        store_dir: directory of the store, if not the default.

    Returns:
        Hits, best first; paths are relative to the repository root.

    Raises:
        InputError: an empty query, `k` < 1, not a git repository, or no index yet.
    """
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    identifiers = query_identifiers(query)
    if not identifiers:
        raise InputError("the query has no words to search for: give identifiers or words")
    path = store_path(find_repository(repo), store_dir)
    try:
        with SQLiteStore(path) as store:
            limit = max(k * _CANDIDATES_PER_HIT, 20)
            rows = []
            # Chunks that have every word first: precise, and far fewer rows to rank than "any word".
            if len(identifiers) > 1:
                rows = store.search(fts_match(identifiers, every=True), limit=limit)
            if len(rows) < k:
                rows = store.search(fts_match(identifiers), limit=limit)
    except sqlite3.Error as exc:
        raise InputError(f"the index at {path} cannot be read ({exc}): run `vibe index --full`") from exc
    wanted = {_normal(identifier) for identifier in identifiers}
    # `parse args` asks for `parse_args` as much as `parseArgs` does.
    if len(identifiers) > 1:
        wanted.add("".join(_normal(identifier) for identifier in identifiers))
    wanted.discard("")
    scored = sorted(((row.rank * _boost(row, wanted), row) for row in rows), key=lambda pair: -pair[0])
    return [
        SearchHit(
            path=row.path,
            start_line=row.start_line,
            end_line=row.end_line,
            symbol=row.symbol,
            score=score,
            text=row.text,
        )
        for score, row in scored[:k]
    ]
