"""Index a repository: find what changed since the last run, analyse only that, and store the results."""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from tasks.indexing.analyze import MAX_FILE_BYTES, Job, analyze
from tasks.indexing.models import FileAnalysis, IndexStats
from tasks.indexing.scan import Repository, blob_id, list_files, open_repository, skip_reason_for_path
from tasks.indexing.store import SQLiteStore, Store
from tasks.indexing.worker import analyse_in_workers
from vibe.errors import InputError

STORE_FILE = "index.sqlite"
# Below this many files to analyse, starting worker processes costs more than it saves.
_PARALLEL_MIN_FILES = 48
# Files per store transaction: bounds memory and the work an interrupted run loses.
_BATCH_FILES = 256

Progress = Callable[[int, int], None]


def repository_key(repository: Repository) -> str:
    """The key of a repository's path map in a store: its git directory (one per clone and per worktree)."""
    return str(repository.git_dir.resolve())


def open_store(repository: Repository, store_dir: Path | None = None, *, create: bool = False) -> SQLiteStore:
    """The store of `repository` (see `store_path`), opened on its path map.

    Raises:
        InputError: no index yet (readers), or the store cannot be opened.
    """
    path = store_path(repository, store_dir)
    try:
        return SQLiteStore(path, repository=repository_key(repository), create=create)
    except sqlite3.Error as exc:
        raise InputError(f"cannot open the index {path}: {exc}") from exc


def store_path(repository: Repository, store_dir: Path | None = None) -> Path:
    """Where a repository's index lives: `<store_dir>/index.sqlite`, by default `<VIBE_HOME>/index/index.sqlite`.

    The default is one store shared by every repository of the user (each keyed by its git directory), so a
    second clone, a fork, a worktree or another branch analyses only the blobs none of them has analysed yet.
    It is out of every working tree, so it is never indexed, committed or seen by `git status`. `store_dir`
    puts the store elsewhere (a private store, or one shared by a group of repositories).
    """
    if store_dir is None:
        from vibe.settings import current_settings

        store_dir = current_settings().home / "index"
    return store_dir / STORE_FILE


def _link_analysed(store: Store, jobs: list[Job]) -> tuple[set[str], list[Job]]:
    """Link the files whose content another repository of the store (or this one, on another branch) has
    analysed; returns their paths and the jobs left to analyse."""
    if not jobs:
        return set(), jobs
    reused = store.reuse([(job.path, job.blob) for job in jobs if job.blob])
    return reused, [job for job in jobs if job.path not in reused]


def _forget_stale(store: Store, own_key: str) -> None:
    """Drop the repositories whose git directory is gone (deleted, or moved: the new place has a new key).

    Called at the end of a run, so a moved repository indexed at its new place has linked its contents first.
    """
    for key in store.repositories():
        if key != own_key and Path(key).is_absolute() and not Path(key).exists():
            store.forget(key)


def _working_blob(root: Path, path: str, max_bytes: int) -> str | None:
    """The id of a modified or untracked file's content, or None if it cannot be read (analysis reports it)."""
    full = root / path
    try:
        if full.is_symlink():
            return "link"
        status = full.stat()
        if not stat.S_ISREG(status.st_mode):
            return None
        if status.st_size > max_bytes:
            # Huge files are never read: their size and mtime stand for their content.
            return f"size:{status.st_size}:{status.st_mtime_ns}"
        return blob_id(full.read_bytes())
    except OSError:
        return None


def _plan(
    repository: Repository,
    snapshot: dict[str, str | None],
    stored: dict[str, tuple[str, str]],
    max_bytes: int,
) -> tuple[list[FileAnalysis], list[Job]]:
    """Split the working tree into records decided by path alone and files that need analysing."""
    decided: list[FileAnalysis] = []
    jobs: list[Job] = []
    root = str(repository.root)
    for path, known in snapshot.items():
        old_blob, old_status = stored.get(path, ("", ""))
        reason = skip_reason_for_path(path)
        if reason is not None:
            if old_status != reason:
                decided.append(FileAnalysis(path=path, status=reason, blob=known or ""))
            continue
        blob = known if known is not None else _working_blob(repository.root, path, max_bytes)
        if blob is not None and blob.startswith("link"):
            if old_status != "symlink" or old_blob != blob:
                decided.append(FileAnalysis(path=path, status="symlink", blob=blob))
            continue
        if blob and blob == old_blob:
            continue
        if blob is not None and blob.startswith("size:"):
            decided.append(FileAnalysis(path=path, status="huge", blob=blob))
            continue
        jobs.append(Job(path=path, root=root, blob=blob, max_bytes=max_bytes))
    return decided, jobs


def _analyse_all(jobs: list[Job], workers: int) -> Iterator[FileAnalysis]:
    if workers <= 1 or len(jobs) < _PARALLEL_MIN_FILES:
        yield from map(analyze, jobs)
        return
    # Largest files first, so that no worker ends the run alone on a big file.
    yield from analyse_in_workers(sorted(jobs, key=_size, reverse=True), workers)


def _size(job: Job) -> int:
    try:
        return os.stat(os.path.join(job.root, job.path)).st_size
    except OSError:
        return 0


def _batches(results: Iterable[FileAnalysis], progress: Progress | None, total: int) -> Iterator[list[FileAnalysis]]:
    batch: list[FileAnalysis] = []
    chunks = 0
    for done, result in enumerate(results, start=1):
        batch.append(result)
        chunks += len(result.chunks)
        if progress is not None:
            progress(done, total)
        if len(batch) >= _BATCH_FILES or chunks >= 20_000:
            yield batch
            batch, chunks = [], 0
    if batch:
        yield batch


def index_repository(
    repo: Path,
    *,
    full: bool = False,
    store_dir: Path | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
    max_file_bytes: int = MAX_FILE_BYTES,
    lock_timeout_s: float = 600.0,
) -> IndexStats:
    """Index the git repository at `repo` (incrementally unless `full`).

    Every file git does not ignore is considered: tracked files by the blob id git stores, modified and
    untracked ones by hashing their content, so only changed files are analysed again; files gone from the
    working tree (deleted, renamed away) leave the index. Binary, vendored, generated, huge and unreadable
    files are skipped and counted; a file with invalid UTF-8 is indexed with replacement characters and
    reported.

    Args:
        repo: any directory inside the repository's working tree.
        full: drop the stored index and analyse every file again.
        store_dir: directory of the store (default: `<VIBE_HOME>/index`, shared by all repositories).
        progress: called with (files analysed, files to analyse) as the run advances.
        workers: processes that parse in parallel (default: one per CPU).
        max_file_bytes: files larger than this are skipped as `huge`.
        lock_timeout_s: how long to wait for another index run on the same store to finish.

    Returns:
        What the run did and the store's totals.

    Raises:
        InputError: `repo` is not a git working tree, or the store cannot be created or used.
        LockTimeoutError: another index run held the store for longer than `lock_timeout_s`.
    """
    started = time.perf_counter()
    repository = open_repository(repo)
    path = store_path(repository, store_dir)
    store = open_store(repository, store_dir, create=True)
    try:
        with store.write_lock(lock_timeout_s):
            if full:
                store.reset()
            snapshot = list_files(repository)
            stored = store.file_states()
            removed = [p for p in stored if p not in snapshot]
            decided, jobs = _plan(repository, snapshot, stored, max_file_bytes)
            changed = len(removed) + len(decided)
            reused, jobs = (set(), jobs) if full else _link_analysed(store, jobs)
            changed += len(reused)
            if progress is not None:
                progress(0, len(jobs))
            problems: list[str] = []
            if removed or decided:
                store.apply(decided, removed)
            results = _analyse_all(jobs, workers or os.cpu_count() or 1)
            for batch in _batches(results, progress, len(jobs)):
                store.apply(batch, ())
                # A file that stays unreadable is retried every run but is no change.
                changed += sum(1 for r in batch if not (r.status == "unreadable" == stored.get(r.path, ("", ""))[1]))
                problems.extend(r.problem for r in batch if r.problem)
            counts = store.counts()
            _forget_stale(store, repository_key(repository))
    except sqlite3.Error as exc:
        raise InputError(f"the index at {path} cannot be used ({exc}): delete it and run `vibe index` again") from exc
    finally:
        store.close()
    return IndexStats(
        files=counts.files,
        changed=changed,
        symbols=counts.symbols,
        chunks=counts.chunks,
        skipped=counts.skipped,
        elapsed_s=time.perf_counter() - started,
        skipped_by_reason=counts.skipped_by_reason,
        problems=tuple(sorted(problems)),
        store=str(path),
        reused=len(reused),
        skipped_files=counts.skipped_files,
    )
