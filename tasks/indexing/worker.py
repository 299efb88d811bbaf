"""Parallel analysis in worker processes started as `python -m tasks.indexing._analysis_worker`.

Why not `multiprocessing`: its `spawn` start method re-imports the caller's `__main__` in every worker (a
script without a main guard would index recursively and deadlock on the store's lock), and `fork` is unsafe
in a process that runs Prefect's threads. A worker here imports only this package and answers batches of jobs
over its standard streams: length-prefixed pickles, written and read only by this module.
"""

from __future__ import annotations

import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from tasks.indexing.analyze import Job, analyze
from tasks.indexing.models import FileAnalysis

_HEADER = struct.Struct("!Q")


def _send(stream: IO[bytes], payload: object) -> None:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def _receive(stream: IO[bytes]) -> object | None:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        return None
    # Only ever the pickles this module's own parent or child process wrote to a private pipe.
    answer: object = pickle.loads(data)  # noqa: S301
    return answer


def serve() -> None:
    """Answer batches of jobs on stdin with their analyses on stdout until stdin closes (the worker's loop)."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    # Nothing else may write to the result stream.
    sys.stdout = sys.stderr
    while True:
        jobs = _receive(stdin)
        if jobs is None:
            return
        assert isinstance(jobs, list)
        _send(stdout, [analyze(job).to_wire() for job in jobs])


class _Worker(threading.Thread):
    """Feeds one worker process batches from the shared queue and puts its results on the result queue."""

    def __init__(self, batches: queue.Queue[list[Job] | None], results: queue.Queue[list[FileAnalysis] | None]):
        super().__init__(daemon=True)
        self.batches = batches
        self.results = results
        self.process: subprocess.Popen[bytes] | None = None

    def _start(self) -> subprocess.Popen[bytes]:
        # Workers read untrusted repository content: they get no credentials.
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.endswith(("_API_KEY", "_TOKEN", "_SECRET", "_PASSWORD"))
        }
        # The package's own location first, so that a worker imports the same code as its parent.
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
        return subprocess.Popen(
            [sys.executable, "-m", "tasks.indexing._analysis_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )

    def run(self) -> None:
        try:
            while (batch := self.batches.get()) is not None:
                self.results.put(self._analyse(batch))
        finally:
            self.results.put(None)
            if self.process is not None and self.process.stdin is not None:
                self.process.stdin.close()
                self.process.wait()

    def _analyse(self, batch: list[Job]) -> list[FileAnalysis]:
        if self.process is None or self.process.poll() is not None:
            self.process = self._start()
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        try:
            _send(self.process.stdin, batch)
            answer = _receive(self.process.stdout)
        except OSError:
            answer = None
        if isinstance(answer, list):
            return [FileAnalysis.from_wire(wire) for wire in answer]
        # The worker died on this batch (a parser crash): report its files and retry them on the next run.
        self.process.kill()
        self.process.wait()
        self.process = None
        return [
            FileAnalysis(path=job.path, status="failed", blob="", problem=f"{job.path}: analysis crashed")
            for job in batch
        ]


def analyse_in_workers(jobs: Sequence[Job], workers: int, batch_size: int = 16) -> Iterator[FileAnalysis]:
    """Analyse `jobs` in `workers` processes; results come in the order they finish."""
    batches: queue.Queue[list[Job] | None] = queue.Queue()
    results: queue.Queue[list[FileAnalysis] | None] = queue.Queue()
    for start in range(0, len(jobs), batch_size):
        batches.put(list(jobs[start : start + batch_size]))
    threads = [_Worker(batches, results) for _ in range(workers)]
    for _ in threads:
        batches.put(None)
    for thread in threads:
        thread.start()
    running = len(threads)
    try:
        while running:
            answer = results.get()
            if answer is None:
                running -= 1
                continue
            yield from answer
    finally:
        # An abandoned run (an exception in the consumer) stops the workers instead of leaving them behind.
        while not batches.empty():
            try:
                batches.get_nowait()
            except queue.Empty:
                break
        for _ in threads:
            batches.put(None)
        for thread in threads:
            thread.join(timeout=30)
