"""The ground floor's file helpers: an atomic replace that never leaves half a file, and a lock other processes
respect."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vibe.fsutil import atomic_write, file_lock


def test_atomic_write_replaces_the_file_and_leaves_no_temporary_behind(tmp_path: Path) -> None:
    target = tmp_path / "journal.json"
    target.write_text("old")
    atomic_write(target, "new ünïcode")
    assert target.read_text(encoding="utf-8") == "new ünïcode"
    assert target.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["journal.json"]


def test_a_failed_atomic_write_keeps_the_old_content(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    with pytest.raises(TypeError):
        atomic_write(target, 42)  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]


def _try_lock(path: Path) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys; from pathlib import Path; from vibe.fsutil import file_lock\n"
        "try:\n"
        f"    with file_lock(Path({str(path)!r}), timeout_s=0.2):\n"
        "        print('acquired')\n"
        "except TimeoutError as exc:\n"
        "    print('timeout', exc)\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)


def test_file_lock_keeps_other_processes_out_until_released(tmp_path: Path) -> None:
    lock = tmp_path / "sub" / "x.lock"
    with file_lock(lock):
        held = _try_lock(lock)
    assert held.stdout.startswith("timeout"), held.stdout + held.stderr
    assert "held by another process" in held.stdout
    assert _try_lock(lock).stdout.strip() == "acquired"
