"""Which command runs a repository's tests, how to make it write results, and how to re-run one test.

Detection looks at the files at the workspace's top level, in this order: Python project files (pytest),
`Cargo.toml` (cargo test), `go.mod` (go test ./...), `package.json` with a real `test` script (npm test), and
finally any `test_*.py` file (pytest). An explicit command always wins; its kind is recognised from its words
so that pytest still writes JUnit XML and cargo/go output is still read per test.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tasks.testing.runners import CUSTOM, DETECTION_ORDER, RECOGNITION_ORDER, TestRunner
from vibe.errors import InputError

__all__ = ["TestPlan", "detect_kind", "detect_runner", "plan_tests"]

# Dependency files whose content decides whether a cached setup environment can be reused.
DEPENDENCY_FILES = (
    "pyproject.toml", "setup.py", "setup.cfg", "requirements.txt", "requirements-dev.txt", "requirements-test.txt",
    "dev-requirements.txt", "test-requirements.txt", "poetry.lock", "uv.lock", "Pipfile.lock", "tox.ini",
    "package.json", "package-lock.json", "yarn.lock", "pnpm-lock.yaml", "Cargo.toml", "Cargo.lock", "go.mod", "go.sum",
)  # fmt: skip


@dataclass(frozen=True)
class TestPlan:
    """How to run one suite.

    Attributes:
        kind: the runner (`tasks.testing.runners`): its argv, re-runs, results and exit codes.
        command: the command as given or detected, without the result-file arguments the runner adds.
        explicit: the command came from the caller, not from detection.
        reason: why this runner was chosen (the file found, or "explicit command").
    """

    __test__ = False

    kind: TestRunner
    command: tuple[str, ...]
    explicit: bool
    reason: str

    @property
    def runner(self) -> str:
        """The runner's name: pytest, cargo, go, npm or custom."""
        return self.kind.name

    def run_argv(self, junit_path: Path) -> list[str]:
        """The command line of the full run, asking the runner for machine-readable results where it can."""
        return self.kind.run_argv(self.command, junit_path)

    def rerun_argv(self, test_id: str, junit_path: Path, workspace: Path) -> list[str]:
        """The command line that runs only `test_id`.

        Raises:
            ValueError: this runner cannot re-run that test on its own (see `can_rerun`).
        """
        argv = self.kind.rerun_argv(self.command, test_id, junit_path, workspace)
        if argv is None:
            raise ValueError(f"{self.runner} cannot re-run {test_id!r} on its own")
        return argv


def _kind_of(command: Sequence[str]) -> TestRunner:
    return next((kind for kind in RECOGNITION_ORDER if kind.recognises(command)), CUSTOM)


def detect_runner(workspace: Path) -> tuple[str, str] | None:
    """The runner this workspace's files call for and the file that says so, or None."""
    found = detect_kind(workspace)
    return (found[0].name, found[1]) if found is not None else None


def detect_kind(workspace: Path) -> tuple[TestRunner, str] | None:
    """The runner this workspace's files call for and the file that says so (see `DETECTION_ORDER`), or None."""
    for kind in DETECTION_ORDER:
        reason = kind.detect(workspace)
        if reason is not None:
            return kind, reason
    return None


def plan_tests(workspace: Path, command: str | Sequence[str] | None, *, python: str) -> TestPlan:
    """Choose the command for `workspace`.

    Args:
        workspace: the checked-out project.
        command: an explicit command (a string is split like a shell would, without running one), or None.
        python: the interpreter that runs pytest for Python projects.

    Raises:
        InputError: no explicit command and nothing recognisable in the workspace, or an empty command.
    """
    if command is not None:
        argv = tuple(shlex.split(command) if isinstance(command, str) else command)
        if not argv:
            raise InputError("the test command is empty")
        return TestPlan(kind=_kind_of(argv), command=argv, explicit=True, reason="explicit command")
    found = detect_kind(workspace)
    if found is None:
        raise InputError(
            f"found no tests to run in {workspace}: no pyproject.toml/setup.py/pytest.ini, Cargo.toml, go.mod, "
            "package.json test script or test_*.py files; pass a test command"
        )
    kind, reason = found
    return TestPlan(kind=kind, command=kind.default_command(python), explicit=False, reason=reason)


def resolve_program(program: str, *, workspace: Path, path_env: str) -> str | None:
    """The executable `program` names (a path relative to the workspace, or a name on `path_env`), or None."""
    if "/" in program:
        candidate = Path(program) if Path(program).is_absolute() else workspace / program
        return str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None
    return shutil.which(program, path=path_env)
