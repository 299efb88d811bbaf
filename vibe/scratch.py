"""Scratch directories that a later run can tell are abandoned, and remove.

Every temporary directory the pipeline makes (workspaces, test runs) is created by `scratch_dir`, which writes
an owner file naming the creating process (pid and its start time, so a reused pid is not mistaken for the
owner). When a process dies without cleaning up (SIGKILL, OOM, a power cut), `collect_abandoned` finds its
directories by prefix and removes them; `vibe gc` and the start of every pipeline run call it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["OWNER_FILE", "SCRATCH_PREFIXES", "Abandoned", "collect_abandoned", "scratch_dir"]

OWNER_FILE = ".vibe-owner.json"
# Every prefix `scratch_dir` is called with; `collect_abandoned` looks at these only.
SCRATCH_PREFIXES: tuple[str, ...] = ("vibe-ws-", "vibe-testrun-")


def _start_time(pid: int) -> str | None:
    # Field 22 of /proc/<pid>/stat: the process's start time in clock ticks since boot. The command name
    # (field 2) may contain spaces and parentheses, so split after its closing parenthesis.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def scratch_dir(prefix: str, *, parent: Path | None = None) -> Path:
    """A new temporary directory (resolved) holding an owner file for this process.

    Args:
        prefix: one of `SCRATCH_PREFIXES`.
        parent: where to make it (default: the system's temporary directory).
    """
    if prefix not in SCRATCH_PREFIXES:
        raise ValueError(f"unknown scratch prefix {prefix!r}")
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent)).resolve()
    owner = {"pid": os.getpid(), "start": _start_time(os.getpid())}
    (path / OWNER_FILE).write_text(json.dumps(owner), encoding="utf-8")
    return path


def _owner_alive(directory: Path) -> bool:
    try:
        owner = json.loads((directory / OWNER_FILE).read_text(encoding="utf-8"))
        pid = int(owner["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    start = _start_time(pid)
    return start is not None and start == owner.get("start")


@dataclass(frozen=True)
class Abandoned:
    """A scratch directory whose owner is gone (removed unless it was a dry run)."""

    path: Path
    removed: bool


def collect_abandoned(parent: Path | None = None, *, dry_run: bool = False) -> list[Abandoned]:
    """Remove the scratch directories under `parent` whose creating process no longer runs.

    A directory without a readable owner file counts as abandoned only when it is older than an hour (it may be
    being created right now by a process that has not written the file yet).

    Args:
        parent: the directory to look in (default: the system's temporary directory).
        dry_run: only report what would be removed.
    """
    import time

    root = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    found: list[Abandoned] = []
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return found
    for entry in entries:
        if not entry.name.startswith(SCRATCH_PREFIXES) or entry.is_symlink() or not entry.is_dir():
            continue
        if _owner_alive(entry):
            continue
        if not (entry / OWNER_FILE).is_file():
            try:
                if time.time() - entry.stat().st_mtime < 3600:
                    continue
            except OSError:
                continue
        if not dry_run:
            shutil.rmtree(entry, ignore_errors=True)
        found.append(Abandoned(path=entry, removed=not dry_run and not entry.exists()))
    return found
