"""A run's journal: the results of its finished steps, persisted under the request key.

A pipeline run writes each finished step (a model's reply, a test report, the pull request) here as soon as the
step ends. Re-running with the same key replays finished steps from the journal instead of doing them again,
so a crashed run resumes without a repeated LLM call or a second pull request. One JSON file per key, replaced
atomically on every write, so a crash never leaves it half-written.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vibe.errors import InputError

_VERSION = 1


def request_key(request: str, repo: Path) -> str:
    """A stable key for `request` on the repository at `repo`: 16 hex digits."""
    material = "\0".join([request.strip(), str(Path(repo).resolve())])
    return hashlib.sha256(material.encode()).hexdigest()[:16]


class RunJournal:
    """The persisted step results of one request key.

    Attributes:
        key: the request key.
        directory: the run's directory (`<home>/runs/<key>/`); also holds its patch and summary files.
    """

    def __init__(self, home: Path, key: str) -> None:
        if not key or len(key) > 100 or not all(c.isascii() and (c.isalnum() or c in "-_") for c in key):
            raise InputError(f"invalid run key {key!r}: use up to 100 letters, digits, '-' and '_'")
        self.key = key
        self.directory = Path(home) / "runs" / key
        self._file = self.directory / "journal.json"
        self._steps: dict[str, Any] = {}
        self._reload()

    def get(self, step: str) -> Any:
        """The persisted result of `step`, or None when it has not finished."""
        return self._steps.get(step)

    def has(self, step: str) -> bool:
        return step in self._steps

    def put(self, step: str, value: Any) -> None:
        """Persist `value` (JSON-able) as the result of `step`."""
        self._steps[step] = value
        self.directory.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"version": _VERSION, "key": self.key, "steps": self._steps}, indent=1, default=str)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".journal-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(payload)
            os.replace(tmp, self._file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the key's run lock: one run per key at a time, on this machine.

        The lock is an `fcntl` lock, so a killed run never leaves it behind.

        Raises:
            InputError: another process is running this key right now.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / "run.lock").open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise InputError(
                    f"run {self.key} is in progress in another process; wait for it to finish (same request key)"
                ) from exc
            try:
                # Another process may have written steps while we waited for nothing: read them fresh.
                self._reload()
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _reload(self) -> None:
        self._steps = {}
        if self._file.exists():
            data = json.loads(self._file.read_text(encoding="utf-8"))
            if data.get("version") == _VERSION:
                self._steps = dict(data.get("steps", {}))

    def clear(self) -> None:
        """Forget every step (a fresh start under the same key)."""
        self._steps = {}
        self._file.unlink(missing_ok=True)
