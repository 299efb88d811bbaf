"""Two file-system helpers every layer needs: an atomic replace and an exclusive advisory lock.

`atomic_write` writes a sibling temporary file, flushes it to disk and renames it over the target, so a reader
sees the old content or the new, never half a file, and a crash leaves the old file intact. `file_lock` holds an
`flock` on a lock file for the duration of a `with` block, waiting forever or for at most `timeout_s`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_write", "file_lock"]


def atomic_write(path: Path, data: str | bytes, *, mode: int = 0o644, encoding: str = "utf-8") -> None:
    """Replace `path` with `data` atomically (the directory must exist).

    Args:
        path: the file to write.
        data: its complete new content; text is encoded with `encoding`.
        mode: the permission bits of the new file (the temporary file would otherwise be 0600).
        encoding: the encoding of text `data`.
    """
    payload = data.encode(encoding) if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def file_lock(path: Path, *, timeout_s: float | None = None, poll_s: float = 0.05) -> Iterator[None]:
    """Hold an exclusive `flock` on `path` (created if missing, with its directory) inside the block.

    Args:
        path: the lock file.
        timeout_s: give up after this many seconds (None: wait as long as it takes; 0: try once).
        poll_s: how often to try again while another process holds it (with a timeout).

    Raises:
        TimeoutError: another process held the lock for longer than `timeout_s`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if timeout_s is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError as exc:
                    if time.monotonic() >= deadline:
                        raise TimeoutError(f"{path} is held by another process") from exc
                    time.sleep(poll_s)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
