"""The vector side of hybrid search: every chunk of a repository embedded once, exact cosine kNN over all of them.

Chunks are embedded lazily, by the first hybrid search that finds them without a vector (not at index time:
indexing stays offline, as fast as it was, and never fails on an embedding endpoint; only people who search
by meaning pay for embeddings). A vector is stored under `embedding_key(model, text)` in the store's
`embeddings` table and linked to its chunk (`vector_keys`), so an unchanged chunk is never embedded twice: not
on the next search, not after another repository of the shared store (a clone, a worktree) maps the same
content, not after a full re-index that rebuilt the chunk with the same text.

The search itself is exact: the repository's vectors as one float32 matrix (rows normalised), one
matrix-vector product per query, the top rows read back as chunks. The matrix is cached in the process per
(store, repository, model, store generation), so a long-lived process (a worker, the pipeline) loads it once.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import TYPE_CHECKING

from tasks.indexing.store import ChunkRow, SQLiteStore, Store

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from providers.embeddings import Embedder

_log = logging.getLogger(__name__)

# Texts embedded between two saves: an endpoint that fails midway keeps what it already answered.
_SAVE_EVERY = 512
# Chunks read back per file wanted: enough distinct files even when a file has several close chunks.
_CHUNKS_PER_FILE = 4
# Matrices kept in the process (each is chunks x dimensions float32: 61k x 1536 is 377 MB).
_CACHED_MATRICES = 2
_matrices: OrderedDict[tuple[str, str, str, int], tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]] = (
    OrderedDict()
)


def embedding_text(row: ChunkRow) -> str:
    """What is embedded for a chunk: its path, its symbol and its text (the path says a lot about meaning)."""
    return f"{row.path}\n{row.symbol or ''}\n{row.text}"


def embed_missing(store: Store, embedder: Embedder) -> int:
    """Embed this repository's chunks that have no vector under the embedder's model; returns how many texts
    were sent to the endpoint (0 when every chunk, or every text, already had a vector).

    Raises:
        ExternalError: the endpoint failed; the vectors it answered before are kept and linked.
    """
    from providers.embeddings import embedding_key

    model = embedder.model
    pending = store.unembedded(model)
    if not pending:
        return 0
    texts: dict[str, str] = {}
    links: list[tuple[int, str, str]] = []
    for chunk_id, row in pending:
        text = embedding_text(row)
        key = embedding_key(model, text)
        texts.setdefault(key, text)
        links.append((chunk_id, key, row.text))
    have = set(store.vectors(list(texts)))
    missing = [key for key in texts if key not in have]
    if len(missing) > _SAVE_EVERY:
        _log.info("embedding %d chunks with %s (once: vectors are kept in the index store)", len(missing), model)
    try:
        for start in range(0, len(missing), _SAVE_EVERY):
            group = missing[start : start + _SAVE_EVERY]
            vectors = embedder.embed([texts[key] for key in group])
            store.save_vectors(dict(zip(group, vectors, strict=True)))
            have.update(group)
    finally:
        store.link_vectors(model, [link for link in links if link[1] in have])
        _forget_matrices(store, model)
    return len(missing)


def query_vector(store: Store, embedder: Embedder, query: str) -> list[float]:
    """The query's vector (cached in the store like a chunk's: the same question costs one request once)."""
    from providers.embeddings import embedding_key

    key = embedding_key(embedder.model, f"query: {query}")
    cached = store.vectors([key])
    if key in cached:
        return cached[key]
    vector = embedder.embed([query])[0]
    store.save_vectors({key: vector})
    return vector


def nearest_files(store: Store, embedder: Embedder, query: str, limit: int) -> list[tuple[str, ChunkRow]]:
    """The `limit` files whose chunks are closest in meaning to `query`, closest first, each with its closest
    chunk (`rank`: the cosine similarity). Embeds what is missing first (see `embed_missing`).

    Raises:
        ExternalError: the embedding endpoint failed.
    """
    import numpy as np

    # A matrix cached at the store's current generation was built after every chunk of it had its vector.
    if _cache_key(store, embedder.model) not in _matrices:
        embed_missing(store, embedder)
    wanted = np.asarray(query_vector(store, embedder, query), dtype=np.float32)
    norm = float(np.linalg.norm(wanted))
    ids, matrix = _matrix(store, embedder.model, len(wanted))
    if norm == 0.0 or len(ids) == 0:
        return []
    similarity = matrix @ (wanted / norm)
    top = min(len(similarity), limit * _CHUNKS_PER_FILE)
    best = np.argpartition(-similarity, top - 1)[:top]
    best = best[np.argsort(-similarity[best], kind="stable")]
    rows = store.chunks_by_id([int(ids[i]) for i in best])
    files: dict[str, ChunkRow] = {}
    for i in best:
        row = rows.get(int(ids[i]))
        if row is not None and row.path not in files:
            files[row.path] = ChunkRow(
                row.path, row.start_line, row.end_line, row.symbol, row.text, row.defs, float(similarity[i])
            )
            if len(files) >= limit:
                break
    return list(files.items())


def forget_matrices() -> None:
    """Free every matrix this process cached (the next hybrid search reads its repository's vectors again)."""
    _matrices.clear()


def _cache_key(store: Store, model: str) -> tuple[str, str, str, int] | None:
    if not isinstance(store, SQLiteStore):
        return None
    return (store.location, store.repository, model, store.generation())


def _forget_matrices(store: Store, model: str) -> None:
    key = _cache_key(store, model)
    if key is not None:
        for cached in [k for k in _matrices if k[:3] == key[:3]]:
            del _matrices[cached]


def _matrix(
    store: Store, model: str, dimensions: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """The repository's chunk ids and their vectors as rows of unit length (vectors of another length, from a
    model that changed under the same name, are left out)."""
    import numpy as np

    key = _cache_key(store, model)
    if key is not None and key in _matrices and _matrices[key][1].shape[1] == dimensions:
        _matrices.move_to_end(key)
        return _matrices[key]
    ids, blobs = store.vector_rows(model)
    size = 4 * dimensions
    keep = [i for i, blob in enumerate(blobs) if len(blob) == size]
    # Filled row by row and normalised in place: the peak is the blobs plus one matrix, not several copies.
    matrix = np.empty((len(keep), dimensions), dtype=np.float32)
    for row, i in enumerate(keep):
        matrix[row] = np.frombuffer(blobs[i], dtype=np.float32)
    del blobs
    norms = np.linalg.norm(matrix, axis=1)
    norms[norms == 0.0] = 1.0
    matrix /= norms[:, None]
    entry = (np.asarray([ids[i] for i in keep], dtype=np.int64), matrix)
    if key is not None:
        _matrices[key] = entry
        while len(_matrices) > _CACHED_MATRICES:
            _matrices.popitem(last=False)
    return entry
