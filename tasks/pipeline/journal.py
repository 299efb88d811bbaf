"""A run's journal: the results of its finished steps, persisted under the request key.

A pipeline run writes each finished step (a model's reply, a test report, the pull request) here as soon as the
step ends. Re-running with the same key replays finished steps from the journal instead of doing them again,
so a crashed run resumes without a repeated LLM call or a second pull request. One JSON file per key, replaced
atomically on every write, so a crash never leaves it half-written.

Bounds: no entry is larger than `max_entry_bytes` (its step name and value as serialized into the file, in
UTF-8 bytes; the default matches `Settings.max_reply_bytes`), and the file as a whole never exceeds
`max_total_bytes` (default 32 entries at the cap; a pipeline run writes at most `2 * max_attempts + 3` entries,
so only a run of oversized entries can reach it). `put` refuses what would break either bound before anything
is written, so a hostile 50 MB reply or test report never lands on disk.

Typed: `put(step, model)` stores a frozen pydantic model as its JSON form and `get(step, Model)` reads it back
as a `Model`; `get(step)` without a type returns the raw JSON value (strings such as the base commit).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, TypeVar, overload

from pydantic import BaseModel, ValidationError

from vibe.errors import InputError
from vibe.fsutil import atomic_write, file_lock

M = TypeVar("M", bound=BaseModel)

_VERSION = 1
DEFAULT_MAX_ENTRY_BYTES = 2_000_000
_TOTAL_ENTRIES = 32


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

    def __init__(
        self,
        home: Path,
        key: str,
        *,
        max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES,
        max_total_bytes: int | None = None,
    ) -> None:
        """Open the journal of `key` under `home` (nothing is created until the first `put`).

        Args:
            home: the vibe home (`Settings.home`).
            key: the request key.
            max_entry_bytes: the largest entry `put` accepts, in bytes of its serialized JSON.
            max_total_bytes: the largest the journal file may grow (default `32 * max_entry_bytes`).

        Raises:
            InputError: the key is not a valid run key, or a bound is not positive.
        """
        if not key or len(key) > 100 or not all(c.isascii() and (c.isalnum() or c in "-_") for c in key):
            raise InputError(f"invalid run key {key!r}: use up to 100 letters, digits, '-' and '_'")
        total = _TOTAL_ENTRIES * max_entry_bytes if max_total_bytes is None else max_total_bytes
        if max_entry_bytes < 1 or total < max_entry_bytes:
            raise InputError(
                f"invalid journal bounds: max_entry_bytes={max_entry_bytes}, max_total_bytes={total} "
                "(both positive, the total at least one entry)"
            )
        self.key = key
        self.directory = Path(home) / "runs" / key
        self.max_entry_bytes = max_entry_bytes
        self.max_total_bytes = total
        self._file = self.directory / "journal.json"
        self._steps: dict[str, Any] = {}
        # Each step's line as written into the file, so sizes are checked exactly as they land on disk.
        self._lines: dict[str, str] = {}
        self._reload()

    @overload
    def get(self, step: str) -> Any: ...

    @overload
    def get(self, step: str, kind: type[M]) -> M | None: ...

    def get(self, step: str, kind: type[M] | None = None) -> Any:
        """The persisted result of `step` (as a `kind` when given), or None when it has not finished.

        Raises:
            InputError: the entry is not a valid `kind` (a journal of an older release); the message says to
                start over with `fresh`.
        """
        value = self._steps.get(step)
        if value is None or kind is None:
            return value
        try:
            return kind.model_validate(value)
        except ValidationError as exc:
            raise InputError(
                f"journal entry {step!r} of run {self.key} is not a valid {kind.__name__} ({exc.error_count()} "
                "problems): start the run over with fresh=True (vibe run --fresh)"
            ) from exc

    def has(self, step: str) -> bool:
        return step in self._steps

    def put(self, step: str, value: BaseModel | Any) -> None:
        """Persist `value` (a pydantic model, or a JSON-able value) as the result of `step`.

        Raises:
            InputError: the entry is over `max_entry_bytes`, or the journal would grow over `max_total_bytes`;
                nothing was written and the journal is unchanged.
        """
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json")
        line = _entry_line(step, value)
        size = len(line.encode("utf-8"))
        if size > self.max_entry_bytes:
            raise InputError(
                f"journal entry {step!r} of run {self.key} is {size} bytes of JSON, over the cap of "
                f"{self.max_entry_bytes} bytes per entry; nothing was written"
            )
        lines = {**self._lines, step: line}
        payload = _document(self.key, lines)
        total = len(payload.encode("utf-8"))
        if total > self.max_total_bytes:
            raise InputError(
                f"journal entry {step!r} ({size} bytes) would grow the journal of run {self.key} to {total} bytes, "
                f"over the cap of {self.max_total_bytes}; nothing was written"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        # 0600: the journal holds the model's replies and the run's test output.
        atomic_write(self._file, payload, mode=0o600)
        # Kept as read back from JSON, so this process sees what a resumed one would.
        self._steps[step] = json.loads("{" + line + "}")[step]
        self._lines = lines

    @contextmanager
    def exclusive(self, *, fresh: bool = False) -> Iterator[None]:
        """Hold the key's run lock: one run per key at a time, on this machine; `fresh` clears it once locked.

        The lock is an `fcntl` lock, so a killed run never leaves it behind.

        Raises:
            InputError: another process is running this key right now.
        """
        with ExitStack() as stack:
            try:
                stack.enter_context(file_lock(self.directory / "run.lock", timeout_s=0))
            except TimeoutError as exc:
                raise InputError(
                    f"run {self.key} is in progress in another process; wait for it to finish (same request key)"
                ) from exc
            # Another process may have written steps while we waited for nothing: read them fresh.
            self._reload()
            if fresh:
                self.clear()
            yield

    def _reload(self) -> None:
        self._steps = {}
        self._lines = {}
        if self._file.exists():
            data = json.loads(self._file.read_text(encoding="utf-8"))
            if data.get("version") == _VERSION:
                self._steps = dict(data.get("steps", {}))
                self._lines = {step: _entry_line(step, value) for step, value in self._steps.items()}

    def clear(self) -> None:
        """Forget every step (a fresh start under the same key)."""
        self._steps = {}
        self._lines = {}
        self._file.unlink(missing_ok=True)


def _entry_line(step: str, value: Any) -> str:
    """One step as it stands in the file: `"<step>": <compact JSON>`."""
    try:
        # Non-ASCII text as UTF-8 (escaping it would triple the size of a reply in another script) ...
        encoded = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
        encoded.encode("utf-8")
    except UnicodeEncodeError:
        # ... unless the value holds a lone surrogate, which only an escape can carry in valid UTF-8.
        encoded = json.dumps(value, separators=(",", ":"), default=str)
    return json.dumps(step) + ": " + encoded


def _document(key: str, lines: dict[str, str]) -> str:
    """The journal file: one line per step, so a reader can still see which steps finished."""
    body = ",\n".join(lines.values())
    return f'{{"version": {_VERSION}, "key": {json.dumps(key)}, "steps": {{\n{body}\n}}}}\n'
