"""Localization benchmark: does the index put the file a real commit changed in front of the model?

Each case of `benchmarks/localize_cases.json` is a real commit of a well-known Python project: its message is
the request, the repository at the commit's parent is indexed, and the non-test `.py` files the commit changed
are the answer. For every case the parent is extracted from a local mirror (`git archive`, into a fresh git
repository) and indexed, and two rankings are measured side by side in this one process:

- `vibe`: the files of `search_code(repo, message, k=8)` in order, distinct (what
  `tasks.codegen.generate.gather_context` puts into the prompt as "Relevant code");
- `baseline`: a plain file-level BM25, SQLite FTS5 over the whole text of every tracked `.py` file, the
  message's words OR-ed, no identifier handling.

A case is a hit at k when any answer file is among the first k files. Prints one JSON object: hit@1/3/5/8 for
both rankings, overall and per split (`tuned` cases may be looked at while tuning the ranking, `held_out`
ones are only measured), and the search latency of both in process. Targets (issue 14): hit@8 >= 0.90 and
hit@1 >= 0.50.

Every tree is indexed into the default store, as a user's repositories are: one store shared by all of them
(`<VIBE_HOME>/index`, VIBE_HOME set to a directory of the benchmark's own, never the user's), so the trees of
one project reuse each other's analyses and the BM25 statistics are those of all the trees together.
`--store per-tree` gives each tree a store (a VIBE_HOME) of its own instead: BM25 statistics of that tree
alone, as before the store was shared.

The mirrors are bare clones (the `fetch` tool puts them under /work/.mirror/<owner>+<name>/repo); `--mirrors`
names another directory laid out the same way.

`--toolz SDIST` also indexes a toolz sdist (`pip download --no-deps --no-binary :all: toolz`) and prints where
the issue's two requests put `get_in` and `partition`/`partition_all` (rank of the first chunk defining them).

Usage: `uv run python benchmarks/localize.py [--keep DIR] [--mirrors DIR] [--cases] [--split tuned|held_out]
[--store shared|per-tree] [--toolz SDIST]`
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from tasks.indexing import index_repository, search_code

_CASES = Path(__file__).with_name("localize_cases.json")
_KS = (1, 3, 5, 8)
_WORD = re.compile(r"\w+")


def _git(*args: str, cwd: Path | None = None) -> bytes:
    return subprocess.run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", *args],
        cwd=cwd, check=True, capture_output=True,
    ).stdout


def _checkout(mirrors: Path, repository: str, commit: str, workdir: Path) -> Path:
    """The tree of `commit` as a fresh one-commit git repository (reused when `workdir` already has it)."""
    tree = workdir / f"{repository.replace('/', '+')}@{commit[:12]}"
    if (tree / ".git").is_dir():
        return tree
    git_dir = mirrors / repository.replace("/", "+") / "repo"
    tree.mkdir(parents=True)
    archive = _git("--git-dir", str(git_dir), "archive", "--format=tar", commit)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    _git("init", "-q", "-b", "main", cwd=tree)
    _git("add", "-A", cwd=tree)
    _git("commit", "-q", "--no-verify", "-m", "parent", cwd=tree)
    return tree


class Baseline:
    """File-level BM25 over the whole text of every tracked `.py` file (FTS5's default tokenizer)."""

    def __init__(self, tree: Path) -> None:
        self._db = sqlite3.connect(":memory:")
        self._db.execute("CREATE VIRTUAL TABLE files USING fts5 (path UNINDEXED, text)")
        paths = _git("ls-files", "-z", "--", "*.py", cwd=tree).decode().split("\0")
        rows = []
        for path in filter(None, paths):
            try:
                rows.append((path, (tree / path).read_text(encoding="utf-8", errors="replace")))
            except OSError:
                continue
        self._db.executemany("INSERT INTO files VALUES (?, ?)", rows)

    def rank(self, query: str, k: int) -> list[str]:
        words = dict.fromkeys(word.lower() for word in _WORD.findall(query))
        match = " OR ".join('"' + word.replace('"', '""') + '"' for word in words)
        if not match:
            return []
        sql = "SELECT path FROM files WHERE files MATCH ? ORDER BY bm25(files) LIMIT ?"
        return [path for (path,) in self._db.execute(sql, (match, k))]


def vibe_files(tree: Path, query: str, k: int) -> list[str]:
    """The distinct files of the first `k` hits of `search_code`, in order (the pipeline's "Relevant code")."""
    return list(dict.fromkeys(hit.path for hit in search_code(tree, query, k=k)))


_TOOLZ = {
    "get value from nested dictionary": ("get_in",),
    "split a list into groups of n": ("partition", "partition_all"),
}


def _toolz(sdist: Path, workdir: Path) -> dict[str, Any]:
    """Where the issue's toolz requests put the functions a user wants (1-based hit rank, None: not in 8)."""
    tree = workdir / "toolz"
    if not (tree / ".git").is_dir():
        tree.mkdir(parents=True)
        subprocess.run(["tar", "-xzf", str(sdist), "-C", str(tree), "--strip-components=1"], check=True)
        _git("init", "-q", "-b", "main", cwd=tree)
        _git("add", "-A", cwd=tree)
        _git("commit", "-q", "--no-verify", "-m", "toolz", cwd=tree)
    index_repository(tree, workers=1)
    found: dict[str, Any] = {}
    for query, wanted in _TOOLZ.items():
        hits = search_code(tree, query, k=8)
        found[query] = next(
            ({"rank": i + 1, "symbol": hit.symbol, "path": hit.path} for i, hit in enumerate(hits)
             if hit.symbol is not None and hit.symbol.rsplit(".", 1)[-1] in wanted),
            None,
        )
    return found


def _timed(fn: Callable[[], list[str]]) -> tuple[float, list[str]]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _first_hit(ranked: list[str], answer: list[str]) -> int | None:
    return next((i + 1 for i, path in enumerate(ranked) if path in answer), None)


def _rates(positions: list[int | None]) -> dict[str, float]:
    n = len(positions) or 1
    return {f"hit@{k}": round(sum(1 for p in positions if p is not None and p <= k) / n, 3) for k in _KS}


def _summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "cases": len(results),
        "vibe": _rates([r["vibe"] for r in results]),
        "baseline": _rates([r["baseline"] for r in results]),
    }


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(1000 * ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", type=Path, help="Extract the trees (and their indexes) here and keep them.")
    parser.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"), help="Where the bare mirrors are.")
    parser.add_argument("--cases", action="store_true", help="Also print every case's ranks.")
    parser.add_argument("--split", choices=("tuned", "held_out"), help="Only the cases of this split.")
    parser.add_argument("--store", choices=("shared", "per-tree"), default="shared",
                        help="One store for every tree (the default store, as for a user), or one per tree.")
    parser.add_argument("--toolz", type=Path, help="A toolz sdist (.tar.gz) to try the issue's two requests on.")
    args = parser.parse_args()
    cases = json.loads(_CASES.read_text())["cases"]
    if args.split:
        cases = [case for case in cases if case["split"] == args.split]
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="vibe-localize-"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ["VIBE_HOME"] = str(workdir / "vibe-home")
    results: list[dict[str, Any]] = []
    vibe_s: list[float] = []
    baseline_s: list[float] = []
    index_s = 0.0
    try:
        for case in cases:
            tree = _checkout(args.mirrors, case["repository"], case["parent"], workdir)
            if args.store == "per-tree":
                os.environ["VIBE_HOME"] = str(workdir / "vibe-homes" / tree.name)
            start = time.perf_counter()
            index_repository(tree, workers=1)
            index_s += time.perf_counter() - start
            baseline = Baseline(tree)
            query = case["message"]
            vibe_files(tree, query, 8)  # warm the page cache and any per-generation prior
            elapsed, ours = _timed(partial(vibe_files, tree, query, 8))
            vibe_s.append(elapsed)
            elapsed, theirs = _timed(partial(baseline.rank, query, 8))
            baseline_s.append(elapsed)
            results.append({
                "repository": case["repository"], "commit": case["commit"][:10], "split": case["split"],
                "answer": case["files"], "vibe": _first_hit(ours, case["files"]),
                "baseline": _first_hit(theirs, case["files"]), "vibe_files": ours,
            })
        figures: dict[str, Any] = {
            "all": _summary(results),
            **{split: _summary([r for r in results if r["split"] == split]) for split in ("tuned", "held_out")},
            "search_p50_ms": {"vibe": _ms(vibe_s, 0.5), "baseline": _ms(baseline_s, 0.5)},
            "search_p95_ms": {"vibe": _ms(vibe_s, 0.95), "baseline": _ms(baseline_s, 0.95)},
            "index_s_total": round(index_s, 2),
        }
        if args.toolz:
            figures["toolz"] = _toolz(args.toolz, workdir)
        if args.cases:
            figures["per_case"] = results
        print(json.dumps(figures, indent=1))
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
