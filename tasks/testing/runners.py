"""The kinds of test runner behind one `TestRunner` protocol: pytest, cargo, go, npm and a custom command.

Each kind says whether a workspace calls for it (and why), whether an explicit command is of its kind, the
command line of a full run and of a single-test re-run, how to read its per-test results, and what its exit
codes mean. Everything else in this package asks the runner object; no code outside this module compares a
runner's name. Detection asks the kinds in `DETECTION_ORDER`; an explicit command is recognised by the first
kind of `RECOGNITION_ORDER` whose `recognises` is true, else it is a `CustomRunner` command.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Protocol

from tasks.testing.junit import (
    parse_cargo_output,
    parse_go_output,
    parse_junit,
    parse_pytest_progress,
    parse_tap_output,
)
from tasks.testing.report import TestCaseResult

__all__ = [
    "CARGO", "CUSTOM", "DETECTION_ORDER", "GO", "NPM", "PYTEST", "RECOGNITION_ORDER", "CargoRunner", "CustomRunner",
    "GoRunner", "NpmRunner", "PytestRunner", "TestRunner",
]  # fmt: skip

_PYTHON_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", "pytest.ini", "tox.ini", "conftest.py")
# npm's placeholder script of `npm init`: a project with it has no tests.
_NPM_PLACEHOLDER = 'echo "Error: no test specified" && exit 1'
# How much of a killed run's output is read back for its progress lines.
_PROGRESS_BYTES = 8 * 1024 * 1024


class TestRunner(Protocol):
    """One kind of test runner.

    Attributes:
        name: the runner's name in reports and JSON (`report.runner`): pytest, cargo, go, npm or custom.
        uses_virtualenv: a setup step for this kind installs into a cached virtualenv (Python projects).
    """

    @property
    def name(self) -> str: ...

    @property
    def uses_virtualenv(self) -> bool: ...

    def detect(self, workspace: Path) -> str | None:
        """Why the workspace's files call for this runner (the file found), or None when they do not."""
        ...

    def recognises(self, command: Sequence[str]) -> bool:
        """Whether an explicit command is of this kind (so that its results are read the way it writes them)."""
        ...

    def default_command(self, python: str) -> tuple[str, ...]:
        """The command a detected project of this kind runs; `python` is the interpreter for Python projects."""
        ...

    def run_argv(self, command: Sequence[str], results: Path) -> list[str]:
        """The full run's command line, asking for machine-readable results at `results` where it can."""
        ...

    def rerun_argv(self, command: Sequence[str], test_id: str, results: Path, workspace: Path) -> list[str] | None:
        """The command line that runs only `test_id`, or None when this runner cannot re-run that test alone."""
        ...

    def parse_results(self, results: Path, output: str) -> list[TestCaseResult]:
        """The per-test results of a finished run, from the results file and/or the run's output."""
        ...

    def results_after_timeout(self, output_log: Path, timeout_s: float) -> tuple[list[TestCaseResult], str | None]:
        """What a run killed by its timeout before writing results got through, and the test it was running."""
        ...

    def explain_exit(self, exit_code: int | None, tests: Sequence[TestCaseResult]) -> str | None:
        """What an exit code of this runner means when it says more than the per-test counts, else None."""
        ...


# Not a pytest test class, despite its name; set outside the body, where it would become a protocol member.
TestRunner.__test__ = False  # type: ignore[attr-defined]


def _first_word(command: Sequence[str]) -> str:
    return Path(command[0]).name if command else ""


def _has_python_tests(workspace: Path) -> bool:
    for root, dirs, files in os.walk(workspace):
        depth = Path(root).relative_to(workspace).parts
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("node_modules", "target", "venv")]
        if len(depth) >= 4:
            dirs[:] = []
        if any((f.startswith("test_") or f.endswith("_test.py")) and f.endswith(".py") for f in files):
            return True
    return False


def _pytest_extras(junit_path: Path) -> list[str]:
    # No cache directory in the workspace, results as JUnit XML outside it (xunit1 keeps file names for node ids),
    # and verbose progress so that a run killed by its timeout still says which test hung.
    return ["-p", "no:cacheprovider", "-o", "junit_family=xunit1", f"--junitxml={junit_path}", "--color=no", "-v"]


def _pytest_args_start(command: Sequence[str]) -> int:
    for index, word in enumerate(command):
        if Path(word).name in ("pytest", "py.test"):
            return index + 1
    return len(command)


def _read_progress(output_log: Path) -> str | None:
    try:
        with output_log.open("rb") as handle:
            handle.seek(max(0, output_log.stat().st_size - _PROGRESS_BYTES))
            return handle.read().decode(errors="replace")
    except OSError:
        return None


class _NoTimeoutResults:
    """Runners whose output, parsed as usual, is all there is after a timeout."""

    def results_after_timeout(self, output_log: Path, timeout_s: float) -> tuple[list[TestCaseResult], str | None]:
        return [], None

    def explain_exit(self, exit_code: int | None, tests: Sequence[TestCaseResult]) -> str | None:
        return None


class PytestRunner:
    """pytest: found by a Python project file, results as JUnit XML, re-runs by node id."""

    name = "pytest"
    uses_virtualenv = True

    _EXIT: ClassVar[dict[int, str]] = {
        2: "interrupted: errors while collecting tests",
        3: "pytest hit an internal error",
        4: "pytest was called with bad arguments",
        5: "no tests collected",
    }

    def detect(self, workspace: Path) -> str | None:
        return next((marker for marker in _PYTHON_MARKERS if (workspace / marker).is_file()), None)

    def recognises(self, command: Sequence[str]) -> bool:
        return any(Path(word).name in ("pytest", "py.test") for word in command)

    def default_command(self, python: str) -> tuple[str, ...]:
        return (python, "-m", "pytest")

    def run_argv(self, command: Sequence[str], results: Path) -> list[str]:
        return [*command, *_pytest_extras(results)]

    def rerun_argv(self, command: Sequence[str], test_id: str, results: Path, workspace: Path) -> list[str] | None:
        # An id without "::" is a collection error of a whole file: nothing to re-run alone.
        if "::" not in test_id:
            return None
        # Drop the explicit command's own path arguments, or they would run again alongside the one test.
        start = _pytest_args_start(command)
        args = [t for t in command[start:] if t.startswith("-") or not (workspace / t.split("::")[0]).exists()]
        return [*command[:start], *args, *_pytest_extras(results), test_id]

    def parse_results(self, results: Path, output: str) -> list[TestCaseResult]:
        return parse_junit(results, pytest_ids=True)

    def results_after_timeout(self, output_log: Path, timeout_s: float) -> tuple[list[TestCaseResult], str | None]:
        # Killed pytest writes no JUnit XML: its verbose progress says what finished and which test hung.
        text = _read_progress(output_log)
        if text is None:
            return [], None
        finished, running = parse_pytest_progress(text)
        if running is None:
            return finished, None
        message = f"still running when the {timeout_s:g} s timeout hit"
        return [*finished, TestCaseResult(id=running, outcome="error", message=message)], running

    def explain_exit(self, exit_code: int | None, tests: Sequence[TestCaseResult]) -> str | None:
        # Exit code 2 with results is an interrupted run that still reported its tests: the counts say more.
        if exit_code in self._EXIT and (exit_code != 2 or not tests):
            return self._EXIT[exit_code]
        return None


class PythonFilesPytestRunner(PytestRunner):
    """pytest again, found by `test_*.py` files alone: asked last, after every other kind's project file."""

    def detect(self, workspace: Path) -> str | None:
        return "test_*.py files" if _has_python_tests(workspace) else None


class CargoRunner(_NoTimeoutResults):
    """`cargo test`: results from its output, re-runs with `-- --exact`."""

    name = "cargo"
    uses_virtualenv = False

    def detect(self, workspace: Path) -> str | None:
        return "Cargo.toml" if (workspace / "Cargo.toml").is_file() else None

    def recognises(self, command: Sequence[str]) -> bool:
        return _first_word(command) == "cargo" and "test" in [Path(t).name for t in command]

    def default_command(self, python: str) -> tuple[str, ...]:
        return ("cargo", "test")

    def run_argv(self, command: Sequence[str], results: Path) -> list[str]:
        return list(command)

    def rerun_argv(self, command: Sequence[str], test_id: str, results: Path, workspace: Path) -> list[str] | None:
        base = list(command)
        if "--" not in base:
            base.append("--")
        return [*base, "--exact", test_id]

    def parse_results(self, results: Path, output: str) -> list[TestCaseResult]:
        return parse_cargo_output(output)


class GoRunner(_NoTimeoutResults):
    """`go test -v`: results from its output, named `package::TestName/subtest`, re-runs with `-run`."""

    name = "go"
    uses_virtualenv = False

    def detect(self, workspace: Path) -> str | None:
        return "go.mod" if (workspace / "go.mod").is_file() else None

    def recognises(self, command: Sequence[str]) -> bool:
        return _first_word(command) == "go" and "test" in [Path(t).name for t in command]

    def default_command(self, python: str) -> tuple[str, ...]:
        return ("go", "test", "-v", "./...")

    def run_argv(self, command: Sequence[str], results: Path) -> list[str]:
        return list(command)

    def rerun_argv(self, command: Sequence[str], test_id: str, results: Path, workspace: Path) -> list[str] | None:
        if "::" not in test_id:
            return None
        package, name = test_id.split("::", 1)
        # `-run` takes one anchored pattern per subtest level.
        pattern = "/".join(f"^{re.escape(part)}$" for part in name.split("/"))
        return ["go", "test", "-v", "-count=1", "-run", pattern, package]

    def parse_results(self, results: Path, output: str) -> list[TestCaseResult]:
        return parse_go_output(output)


class _CommandRunner(_NoTimeoutResults):
    """npm scripts and custom commands: the command as given, results only when it writes JUnit XML or TAP."""

    def run_argv(self, command: Sequence[str], results: Path) -> list[str]:
        return list(command)

    def rerun_argv(self, command: Sequence[str], test_id: str, results: Path, workspace: Path) -> list[str] | None:
        return None

    def parse_results(self, results: Path, output: str) -> list[TestCaseResult]:
        if results.is_file():
            return parse_junit(results)
        # Results when the output is TAP (node --test, tap reporters).
        return parse_tap_output(output)


def _npm_has_tests(package_json: Path) -> bool:
    try:
        scripts = json.loads(package_json.read_text()).get("scripts") or {}
    except (OSError, ValueError, AttributeError):
        return False
    script = scripts.get("test") if isinstance(scripts, dict) else None
    return bool(script) and str(script).strip() != _NPM_PLACEHOLDER


class NpmRunner(_CommandRunner):
    """`npm test` (also yarn and pnpm commands): found by a real `test` script in package.json."""

    name = "npm"
    uses_virtualenv = False

    def detect(self, workspace: Path) -> str | None:
        package_json = workspace / "package.json"
        return "package.json" if package_json.is_file() and _npm_has_tests(package_json) else None

    def recognises(self, command: Sequence[str]) -> bool:
        return _first_word(command) in ("npm", "yarn", "pnpm")

    def default_command(self, python: str) -> tuple[str, ...]:
        return ("npm", "test")


class CustomRunner(_CommandRunner):
    """An explicit command of no known kind (`make check`): passes on exit code 0 unless it prints results."""

    name = "custom"
    uses_virtualenv = False

    def detect(self, workspace: Path) -> str | None:
        # Never detected: a custom command is always the caller's.
        return None

    def recognises(self, command: Sequence[str]) -> bool:
        return True

    def default_command(self, python: str) -> tuple[str, ...]:
        raise ValueError("a custom runner has no default command: it is only ever given one")


PYTEST = PytestRunner()
CARGO = CargoRunner()
GO = GoRunner()
NPM = NpmRunner()
CUSTOM = CustomRunner()

# Project files first (a Python project, then Cargo.toml, go.mod, a package.json test script), loose
# `test_*.py` files last, so that a Rust or Go project with a Python helper script stays a Rust or Go project.
DETECTION_ORDER: tuple[TestRunner, ...] = (PYTEST, CARGO, GO, NPM, PythonFilesPytestRunner())
# pytest anywhere in the words wins (`uv run pytest`, `python -m pytest`); the others by their first word.
RECOGNITION_ORDER: tuple[TestRunner, ...] = (PYTEST, CARGO, GO, NPM, CUSTOM)
