"""Where a full index's CPU time goes, stage by stage, on this Python's standard library (one process).

`benchmarks/index.py` measures the whole run; this one explains it. Each stage runs over every `.py` file of
the standard library in this process and reports its CPU seconds and its multiple of `ctags -R`'s CPU time on
the same tree (ctags is single-threaded, so on an idle machine that is also its wall time). CPU time is less
sensitive to the machine's load than wall time, and the ratios are what compare across machines.

Stages: `parse` (tree-sitter, no query), `query` (the tag query over the parsed trees), `symbols` (parse plus
query plus pairing names, i.e. `extract_symbols`), `chunking` (symbol-bounded chunks with identifier words),
`analyze` (everything a worker does per file: read, classify, decode, symbols, chunks), `transport` (pickling
the analyses to the main process and back), `store` (writing them to a fresh SQLite store, FTS5 included).

The floor of a two-core full index is `(symbols + the rest) / 2`: with `parse` alone several times ctags'
CPU time, the issue's 4x-ctags wall target needs everything else to cost well under ctags' own time.

Usage: `uv run python benchmarks/index_breakdown.py`
"""

from __future__ import annotations

import json
import os
import pickle
import resource
import shutil
import subprocess
import sysconfig
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tasks.indexing.analyze import Job, analyze
from tasks.indexing.chunking import chunk_text
from tasks.indexing.models import FileAnalysis
from tasks.indexing.store import SQLiteStore
from tasks.indexing.symbols import _load, extract_symbols

T = TypeVar("T")


def _cpu(call: Callable[[], T]) -> tuple[float, T]:
    start = time.process_time()
    result = call()
    return time.process_time() - start, result


def _ctags_cpu(tree: Path, tags: Path) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    # The same files `benchmarks/index.py` copies: the standard library without installed packages.
    command = ["ctags", "-R", "--exclude=site-packages", "--exclude=__pycache__", "-f", str(tags), "."]
    subprocess.run(command, cwd=tree, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> None:
    tree = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in tree.rglob("*.py") if "site-packages" not in p.parts and p.is_file())
    sources = [p.read_bytes() for p in files]
    texts = [s.decode("utf-8", "replace") for s in sources]
    language = _load("python")
    from tree_sitter import QueryCursor

    with tempfile.TemporaryDirectory(prefix="vibe-breakdown-") as work:
        workdir = Path(work)
        ctags = shutil.which("ctags")
        # The best of three: ctags is the yardstick, so its own noise should not inflate the ratios.
        ctags_cpu = min(_ctags_cpu(tree, workdir / "tags") for _ in range(3)) if ctags else None

        parse_s, parsed = _cpu(lambda: [language.parser.parse(source) for source in sources])
        query_s, _ = _cpu(lambda: [QueryCursor(language.query).matches(tree.root_node) for tree in parsed])
        parsed.clear()
        symbols_s, symbols = _cpu(lambda: [extract_symbols("python", source) for source in sources])
        chunking_s, _ = _cpu(lambda: [chunk_text(text, s.defs) for text, s in zip(texts, symbols, strict=True)])
        jobs = [Job(path=str(p.relative_to(tree)), root=str(tree), blob=f"blob{i}") for i, p in enumerate(files)]
        analyze_s, analyses = _cpu(lambda: [analyze(job) for job in jobs])

        def transport() -> list[FileAnalysis]:
            wire = pickle.dumps([a.to_wire() for a in analyses], protocol=pickle.HIGHEST_PROTOCOL)
            return [FileAnalysis.from_wire(w) for w in pickle.loads(wire)]

        transport_s, _ = _cpu(transport)

        def write() -> None:
            store = SQLiteStore(workdir / "index.sqlite", repository="breakdown", create=True)
            with store, store.write_lock():
                for start in range(0, len(analyses), 256):
                    store.apply(analyses[start : start + 256], ())

        store_s, _ = _cpu(write)

    stages = {
        "parse": parse_s,
        "query": query_s,
        "symbols": symbols_s,
        "chunking": chunking_s,
        "analyze": analyze_s,
        "transport": transport_s,
        "store": store_s,
    }
    # A two-core run's CPU: the workers' analysis, the transport and the main process's writes.
    total = analyze_s + transport_s + store_s
    figures = {
        "files_py": len(files),
        "mb_py": round(sum(map(len, sources)) / 1e6, 1),
        "ctags_cpu_s": round(ctags_cpu, 2) if ctags_cpu else None,
        "cpu_s": {name: round(value, 2) for name, value in stages.items()},
        "over_ctags_cpu": (
            {name: round(value / ctags_cpu, 2) for name, value in stages.items()} if ctags_cpu else None
        ),
        "pipeline_cpu_s": round(total, 2),
        "two_core_floor_over_ctags": round(total / 2 / ctags_cpu, 2) if ctags_cpu else None,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
