"""Helpers for the test-runner tests: real git repositories made in tmp_path."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from tasks.testing import bwrap_available

MakeRepo = Callable[[dict[str, str]], Path]

# Tests of what only the sandbox can do: skipped, saying why, where bubblewrap cannot run (CI requires it).
needs_bwrap = pytest.mark.skipif(bwrap_available() is not None, reason=f"bubblewrap unusable: {bwrap_available()}")


@pytest.fixture(autouse=True)
def git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commits in test repositories work on a machine without a global git identity."""
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "vibe tests")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "tests@vibe.invalid")


@pytest.fixture
def make_repo(tmp_path: Path) -> MakeRepo:
    """Create a committed git repository holding `files` (dedented) and return its path."""
    counter = iter(range(1000))

    def make(files: dict[str, str]) -> Path:
        repo = tmp_path / f"repo{next(counter)}"
        repo.mkdir()
        for name, text in files.items():
            path = repo / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text).lstrip("\n"))
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
        subprocess.run(["git", "add", "."], cwd=repo, check=True)
        subprocess.run(["git", "commit", "-q", "-m", "tests"], cwd=repo, check=True)
        return repo

    return make


def toolchain_problem(*commands: list[str]) -> str | None:
    """Why these toolchain commands (`cargo --version`) cannot run here, or None when each exits 0.

    A program on PATH is not enough: a rustup proxy without a default toolchain is on PATH and runs nothing.
    """
    for command in commands:
        if shutil.which(command[0]) is None:
            return f"{command[0]} is not installed"
        try:
            probe = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"`{' '.join(command)}` cannot run: {exc}"
        if probe.returncode != 0:
            why = (probe.stderr or probe.stdout).strip().splitlines()
            return f"`{' '.join(command)}` exits with {probe.returncode}: {why[-1] if why else 'no output'}"
    return None


def processes_with(token: str) -> list[int]:
    """Pids of the processes whose command line contains `token`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if token in cmdline:
            found.append(int(entry.name))
    return found
