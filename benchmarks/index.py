"""Benchmark of codebase indexing on a large real tree: this Python's standard library in a fresh git repository.

Prints one JSON object: full index time, no-op and one-file-change re-index times, search p50/p95, repo map
time, peak memory, and `ctags -R` on the same tree for comparison (plus `git status`, the floor of a no-op
re-index). Targets (issue 3): full index <= 4x ctags (goal 2x), no-op re-index <= 1 s, search p50 <= 20 ms,
peak memory <= 1 GiB. Issue 14: a second clone of the tree, indexed into the same (shared) store, in at most 15%
of the full index time (`second_clone_over_full`); both use the default store (`<VIBE_HOME>/index`, with
VIBE_HOME set to a directory of the benchmark's own). The machine's load average is printed too: on a shared
machine the figures are noisy.

On a loaded machine read `full_index_cpu_s`, `ctags_cpu_s` and `idle_estimate_over_ctags` (the index's CPU
time spread over all cores, against ctags' CPU time): wall-clock ratios there mostly measure the load.

`--vectors DIMS` also measures the vector side of hybrid search with an in-process embedder of DIMS
dimensions (deterministic pseudo-random vectors, no endpoint): embedding and linking every chunk on the first
hybrid search (the endpoint's own time excluded), the matrix's memory, reading it from the store, and the
hybrid search p50 once it is cached.

Usage: `uv run python benchmarks/index.py [--keep DIR] [--vectors DIMS]`
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tasks.indexing import build_repo_map, index_repository, search_code
from tasks.indexing.index import open_store
from tasks.indexing.scan import open_repository

_FIXED_QUERIES = [
    "parse_args", "JSONDecoder", "urlopen", "getLogger", "thread pool executor", "TemporaryDirectory",
    "http response status", "read config file", "socket timeout", "decode utf8 bytes", "SequenceMatcher",
    "compile regular expression", "asyncio event loop", "namedtuple", "shutil copytree", "deepcopy",
]


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", *args],
        cwd=repo, check=True, capture_output=True,
    )


def _copy_stdlib(target: Path) -> Path:
    source = Path(sysconfig.get_paths()["stdlib"])
    repo = target / "stdlib"
    shutil.copytree(source, repo, ignore=shutil.ignore_patterns("site-packages", "__pycache__", "*.pyc"),
                    symlinks=True)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "stdlib")
    return repo


def _timed(fn: object, *args: object, **kwargs: object) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)  # type: ignore[operator]
    return time.perf_counter() - start, result


def _cpu() -> float:
    """CPU seconds used so far by this process and its waited-for children (less sensitive to load than wall)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class _HashEmbedder:
    """Deterministic vectors from each text's hash: the endpoint's cost left out, the store's and numpy's kept."""

    def __init__(self, dims: int) -> None:
        self.model = f"bench-hash-{dims}"
        self.dims = dims
        self.texts = 0

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        import hashlib

        import numpy as np

        self.texts += len(texts)
        return [
            np.random.default_rng(int.from_bytes(hashlib.sha256(t.encode("utf-8", "replace")).digest()[:8]))
            .standard_normal(self.dims, dtype=np.float32).tolist()
            for t in texts
        ]


def _vector_figures(repo: Path, queries: list[str], dims: int) -> dict[str, object]:
    from tasks.indexing import vectors

    embedder = _HashEmbedder(dims)
    first_s, _ = _timed(search_code, repo, queries[0], k=10, embedder=embedder)
    with open_store(open_repository(repo)) as store:
        ids, matrix = vectors._matrix(store, embedder.model, dims)
        vectors.forget_matrices()
        load_s, _ = _timed(vectors._matrix, store, embedder.model, dims)
    latencies = [_timed(search_code, repo, query, k=10, embedder=embedder)[0] for query in queries]
    return {
        "dims": dims,
        "chunks_embedded": embedder.texts - 1,
        "first_hybrid_search_s": round(first_s, 2),
        "matrix_mb": round(matrix.nbytes / 2**20, 1),
        "matrix_rows": len(ids),
        "matrix_load_s": round(load_s, 3),
        "hybrid_search_p50_ms": round(1000 * statistics.median(latencies), 2),
        "hybrid_search_p95_ms": round(1000 * _percentile(latencies, 0.95), 2),
    }


def _count_py(repo: Path) -> tuple[int, int]:
    """The tree's `.py` files and their lines."""
    files = lines = 0
    for path in repo.rglob("*.py"):
        files += 1
        with path.open("rb") as handle:
            lines += sum(1 for _ in handle)
    return files, lines


def _search_latencies(repo: Path, queries: list[str]) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of a lexical `search_code(query, k=10)` per query, after warming the page cache."""
    for query in queries[:5]:
        search_code(repo, query)
    latencies: list[float] = []
    cpu_latencies: list[float] = []
    for query in queries:
        cpu = time.process_time()
        latencies.append(_timed(search_code, repo, query, k=10)[0])
        cpu_latencies.append(time.process_time() - cpu)
    return latencies, cpu_latencies


def _yardsticks(repo: Path, workdir: Path) -> tuple[float | None, float | None, float]:
    """`ctags -R` wall and CPU seconds on the tree (None without ctags), and `git status` wall seconds."""
    ctags = shutil.which("ctags")
    ctags_s = ctags_cpu = None
    if ctags:
        cpu = _cpu()
        ctags_s, _ = _timed(subprocess.run, [ctags, "-R", "-f", str(workdir / "tags"), "."], cwd=repo,
                            check=True, capture_output=True)
        ctags_cpu = _cpu() - cpu
    git_status_s, _ = _timed(subprocess.run, ["git", "status", "--porcelain"], cwd=repo, check=True,
                             capture_output=True)
    return ctags_s, ctags_cpu, git_status_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", type=Path, help="Build the tree in this directory and keep it.")
    parser.add_argument("--vectors", type=int, metavar="DIMS", help="Also measure the vector side at DIMS.")
    args = parser.parse_args()
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="vibe-index-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        repo = _copy_stdlib(workdir)
        py_files, py_lines = _count_py(repo)
        load_before = os.getloadavg()

        ctags_s, ctags_cpu, git_status_s = _yardsticks(repo, workdir)

        # The default store, shared by the tree and its clone under a VIBE_HOME of the benchmark's own (never the
        # user's): the clone links what the tree analysed.
        os.environ["VIBE_HOME"] = str(workdir / "vibe-home")
        clone = workdir / "clone"
        _git(workdir, "clone", "-q", str(repo), str(clone))
        cpu = _cpu()
        full_s, stats = _timed(index_repository, repo, full=True)
        full_cpu = _cpu() - cpu
        second_clone_s, second = _timed(index_repository, clone)
        noop = [_timed(index_repository, repo)[0] for _ in range(3)]

        target = repo / "json" / "decoder.py"
        target.write_text(target.read_text() + "\n\ndef benchmark_added_function():\n    return 42\n")
        one_file_s, one = _timed(index_repository, repo)

        with open_store(open_repository(repo)) as store:
            names = sorted({d.name for d in store.definitions() if len(d.name) > 5})
        queries = _FIXED_QUERIES + random.Random(7).sample(names, 84)
        latencies, cpu_latencies = _search_latencies(repo, queries)
        map_s, repo_map = _timed(build_repo_map, repo, max_tokens=1024)

        self_usage = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        figures = {
            "tree": {"files_py": py_files, "lines_py": py_lines, "python": sys.version.split()[0]},
            "index": stats.as_dict(),  # type: ignore[attr-defined]
            "skipped_by_reason": stats.skipped_by_reason,  # type: ignore[attr-defined]
            "full_index_s": round(full_s, 3),
            "ctags_s": round(ctags_s, 3) if ctags_s is not None else None,
            "full_over_ctags": round(full_s / ctags_s, 2) if ctags_s else None,
            # Load-independent view: CPU seconds, and the wall time they make on idle cores (ctags uses one).
            "full_index_cpu_s": round(full_cpu, 2),
            "ctags_cpu_s": round(ctags_cpu, 2) if ctags_cpu is not None else None,
            "full_index_idle_estimate_s": round(full_cpu / (os.cpu_count() or 1), 2),
            # ctags is single-threaded, so its CPU time is its wall time on an idle machine.
            "idle_estimate_over_ctags": (
                round(full_cpu / (os.cpu_count() or 1) / ctags_cpu, 2) if ctags_cpu else None
            ),
            "second_clone_s": round(second_clone_s, 3),
            "second_clone_reused": second.reused,  # type: ignore[attr-defined]
            "second_clone_over_full": round(second_clone_s / full_s, 3),
            "noop_reindex_s": round(statistics.median(noop), 3),
            "git_status_s": round(git_status_s, 3),
            "one_file_reindex_s": round(one_file_s, 3),
            "one_file_changed": one.changed,  # type: ignore[attr-defined]
            "search_p50_ms": round(1000 * statistics.median(latencies), 2),
            "search_p95_ms": round(1000 * _percentile(latencies, 0.95), 2),
            "search_cpu_p50_ms": round(1000 * statistics.median(cpu_latencies), 2),
            "search_cpu_p95_ms": round(1000 * _percentile(cpu_latencies, 0.95), 2),
            "search_queries": len(latencies),
            "repo_map_s": round(map_s, 3),
            "repo_map_chars": len(repo_map),  # type: ignore[arg-type]
            # ru_maxrss is in KiB on Linux; workers are reported by their largest one.
            "peak_rss_main_mb": round(self_usage.ru_maxrss / 1024, 1),
            "peak_rss_worker_mb": round(children.ru_maxrss / 1024, 1),
            "workers": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        }
        if args.vectors:
            figures["vectors"] = _vector_figures(repo, queries, args.vectors)
        print(json.dumps(figures, indent=2))
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
