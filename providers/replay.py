"""Replay cassettes: recorded answers keyed by the canonical request, so demos and tests run offline.

A cassette is one human-readable JSON file:

```json
{"version": 1,
 "entries": {"<sha256 of the canonical request>": {"request": {...canonical request...}, "response": {...}}}}
```

The key is `request_digest(request, "<provider>:<model>")` (see `providers/canonical.py`): the same key the
LLM cache uses, so a recorded answer is found whatever alias the caller named. `ReplayProvider` answers from the
file; `RecordingProvider` calls a real provider and adds its answers. Writes take an exclusive `fcntl` lock on a
sibling `.<name>.lock` file, re-read the cassette under it, and replace the file atomically (temp file +
`os.replace`), so concurrent recorders never lose each other's entries and readers never see half a file.
Reads are cached per process and refreshed when the file's mtime or size changes.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from providers.base import CompletionRequest, CompletionResponse, Provider
from providers.canonical import canonical_json, request_digest
from providers.reply_cap import DEFAULT_MAX_REPLY_BYTES, check_reply_size
from vibe.errors import CassetteMissError, ConfigError
from vibe.fsutil import atomic_write, file_lock

CASSETTE_VERSION = 1


@dataclass(frozen=True)
class _Snapshot:
    stamp: tuple[int, int]  # (mtime_ns, size) of the file this was read from
    entries: dict[str, Any]


# One parsed copy per cassette path per process: replaying thousands of requests must not re-read the file.
_SNAPSHOTS: dict[Path, _Snapshot] = {}
_SNAPSHOTS_LOCK = threading.Lock()


class Cassette:
    """One cassette file.

    Args:
        path: the JSON file. It need not exist until something is recorded into it.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path).expanduser().resolve()

    def __repr__(self) -> str:
        return f"Cassette({str(self.path)!r})"

    def exists(self) -> bool:
        return self.path.is_file()

    def entries(self) -> dict[str, Any]:
        """Every entry, keyed by digest (a read-only view of the cached copy: do not mutate it).

        Raises:
            ConfigError: the file is not a version-1 cassette.
        """
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return {}
        stamp = (stat.st_mtime_ns, stat.st_size)
        with _SNAPSHOTS_LOCK:
            snapshot = _SNAPSHOTS.get(self.path)
            if snapshot is not None and snapshot.stamp == stamp:
                return snapshot.entries
        entries = self._read()
        with _SNAPSHOTS_LOCK:
            _SNAPSHOTS[self.path] = _Snapshot(stamp, entries)
        return entries

    def get(self, digest: str) -> CompletionResponse | None:
        """The recorded response for `digest`, or None."""
        entry = self.entries().get(digest)
        if entry is None:
            return None
        try:
            return CompletionResponse.model_validate(entry["response"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"cassette {self.path}: entry {digest[:12]} has no valid response ({exc})") from exc

    def put(self, request: CompletionRequest, resolved_model: str, response: CompletionResponse) -> str:
        """Record `response` as the answer to `request` sent to `resolved_model` (`provider:model`).

        Safe against concurrent writers in other threads and processes. Returns the entry's digest.
        """
        digest = request_digest(request, resolved_model)
        entry = {
            "request": json.loads(canonical_json(request, resolved_model)),
            # A replayed answer is never a cache hit and always one call: keep the recorded facts only.
            "response": response.model_copy(
                update={"cached": False, "attempts": 1, "replayed": False, "list_cost_usd": None}
            ).model_dump(mode="json"),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(self.path.with_name(f".{self.path.name}.lock")):
            # Re-read under the lock: another recorder may have added entries since our last read.
            entries = dict(self._read()) if self.path.exists() else {}
            entries[digest] = entry
            self._write(entries)
        return digest

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise ConfigError(f"cassette {self.path} is not valid JSON ({exc}); fix or delete it") from exc
        if (
            not isinstance(data, dict)
            or data.get("version") != CASSETTE_VERSION
            or not isinstance(data.get("entries"), dict)
        ):
            raise ConfigError(
                f"cassette {self.path} is not a version-{CASSETTE_VERSION} cassette "
                '({"version": 1, "entries": {...}}); re-record it with VIBE_REPLAY=record'
            )
        entries: dict[str, Any] = data["entries"]
        return entries

    def _write(self, entries: dict[str, Any]) -> None:
        text = json.dumps(
            {"version": CASSETTE_VERSION, "entries": dict(sorted(entries.items()))},
            indent=2,
            ensure_ascii=False,
        )
        atomic_write(self.path, text + "\n")


class ReplayProvider:
    """Answers from a cassette, never the network.

    Args:
        cassette: the cassette file.
        provider: the provider the requests are addressed to (`anthropic`, ..., or `replay`); with the request's
            `model` it forms the `provider:model` the cassette is keyed by.
    """

    name = "replay"

    def __init__(self, cassette: Path, provider: str) -> None:
        self._cassette = Cassette(cassette)
        self._provider = provider

    def __repr__(self) -> str:
        return f"ReplayProvider({str(self._cassette.path)!r}, {self._provider!r})"

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """The recorded answer to `request` (provider and model as recorded, `attempts=1`).

        Raises:
            CassetteMissError: the cassette has no entry for this request.
        """
        resolved = f"{self._provider}:{request.model}"
        digest = request_digest(request, resolved)
        response = self._cassette.get(digest)
        if response is None:
            prompt = request.messages[-1].content if request.messages else ""
            prompt = " ".join(prompt.split())
            raise CassetteMissError(
                f"no recorded answer for {resolved} in cassette {self._cassette.path} "
                f"(prompt {prompt[:60]!r}, digest {digest}); record it by running once with a real provider "
                "and VIBE_REPLAY=record (plus the provider's API key)",
                digest=digest,
            )
        return response.model_copy(update={"cached": False, "attempts": 1, "replayed": True})

    async def aclose(self) -> None:
        """Nothing to release."""


class RecordingProvider:
    """Calls a real provider and records each answer into a cassette.

    Args:
        inner: the real provider; its `name` and the request's `model` form the cassette key.
        cassette: the cassette file (created on the first recording).
        max_reply_bytes: a reply whose text is longer (UTF-8) is refused, never recorded
            (`VIBE_MAX_REPLY_BYTES`).
    """

    def __init__(
        self, inner: Provider, cassette: Path, *, max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES
    ) -> None:
        self._inner = inner
        self._cassette = Cassette(cassette)
        self._max_reply_bytes = max_reply_bytes
        self.name = inner.name

    def __repr__(self) -> str:
        return f"RecordingProvider({self._inner!r}, {str(self._cassette.path)!r})"

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """The real provider's answer, recorded before it is returned. Failures are not recorded.

        Raises:
            ProviderError: the real provider failed, or its reply is over the size cap (then nothing is
                recorded).
        """
        response = await self._inner.complete(request)
        check_reply_size(response, model_id=f"{self.name}:{request.model}", max_bytes=self._max_reply_bytes)
        # File locking blocks; keep it off the event loop.
        await asyncio.to_thread(self._cassette.put, request, f"{self.name}:{request.model}", response)
        return response

    async def aclose(self) -> None:
        """Close the real provider."""
        await self._inner.aclose()
