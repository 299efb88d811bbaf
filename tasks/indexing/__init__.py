"""Codebase indexing: incremental, symbol-aware, searchable, with a repo map for prompts.

Public API (plain functions; the Prefect task wrapper `index_repository_task` lives in
`tasks.indexing.prefect_tasks`):

- `index_repository(repo, full=False, store_dir=None, progress=None) -> IndexStats`
- `search_code(repo, query, k=10, store_dir=None, embedder=None) -> list[SearchHit]` (distinct files first)
- `search_files(repo, query, k=10, lines=2, store_dir=None) -> list[FileHit]` (ranked files, best chunks)
- `build_repo_map(repo, max_tokens=1024, mentions=(), store_dir=None) -> str`

By default every repository's index lives in one store shared under VIBE_HOME (`<VIBE_HOME>/index/index.sqlite`),
where analyses are keyed by git blob id, so a second clone, a fork, a worktree or another branch analyses only
the blobs it has not seen; `store_dir` names another directory.
Importing this package loads neither Prefect nor tree-sitter.
"""

from __future__ import annotations

from tasks.indexing.index import index_repository, store_path
from tasks.indexing.models import FileHit, IndexStats, SearchHit
from tasks.indexing.repomap import build_repo_map
from tasks.indexing.search import search_code, search_files

__all__ = [
    "FileHit", "IndexStats", "SearchHit", "build_repo_map", "index_repository", "search_code", "search_files",
    "store_path",
]
