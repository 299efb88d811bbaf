"""Which command runs a repository's tests, how to make it write results, and how to re-run one test.

Detection looks at the files at the workspace's top level, in this order: Python project files (pytest),
`Cargo.toml` (cargo test), `go.mod` (go test ./...), `package.json` with a real `test` script (npm test), and
finally any `test_*.py` file (pytest). An explicit command always wins; its kind is recognised from its words
so that pytest still writes JUnit XML and cargo/go output is still read per test.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vibe.errors import InputError

__all__ = ["TestPlan", "detect_runner", "plan_tests"]

_PYTHON_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", "pytest.ini", "tox.ini", "conftest.py")
# npm's placeholder script of `npm init`: a project with it has no tests.
_NPM_PLACEHOLDER = 'echo "Error: no test specified" && exit 1'
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
        runner: pytest, cargo, go, npm or custom.
        command: the command as given or detected, without the result-file arguments the runner adds.
        explicit: the command came from the caller, not from detection.
        reason: why this runner was chosen (the file found, or "explicit command").
    """

    __test__ = False

    runner: str
    command: tuple[str, ...]
    explicit: bool
    reason: str

    def run_argv(self, junit_path: Path) -> list[str]:
        """The command line of the full run, asking the runner for machine-readable results where it can."""
        if self.runner == "pytest":
            return [*self.command, *_pytest_extras(junit_path)]
        return list(self.command)

    def can_rerun(self) -> bool:
        """Whether single tests can be re-run on their own with this runner."""
        return self.runner in ("pytest", "cargo", "go")

    def rerun_argv(self, test_id: str, junit_path: Path, workspace: Path) -> list[str]:
        """The command line that runs only `test_id`."""
        if self.runner == "pytest":
            # Drop the explicit command's own path arguments, or they would run again alongside the one test.
            start = _pytest_args_start(self.command)
            args = [t for t in self.command[start:] if t.startswith("-") or not (workspace / t.split("::")[0]).exists()]
            base = [*self.command[:start], *args]
            return [*base, *_pytest_extras(junit_path), test_id]
        if self.runner == "cargo":
            base = list(self.command)
            if "--" not in base:
                base.append("--")
            return [*base, "--exact", test_id]
        if self.runner == "go" and "::" in test_id:
            package, name = test_id.split("::", 1)
            # `-run` takes one anchored pattern per subtest level.
            pattern = "/".join(f"^{re.escape(part)}$" for part in name.split("/"))
            return ["go", "test", "-v", "-count=1", "-run", pattern, package]
        raise ValueError(f"{self.runner} cannot re-run single tests")


def _pytest_extras(junit_path: Path) -> list[str]:
    # No cache directory in the workspace, results as JUnit XML outside it (xunit1 keeps file names for node ids),
    # and verbose progress so that a run killed by its timeout still says which test hung.
    return ["-p", "no:cacheprovider", "-o", "junit_family=xunit1", f"--junitxml={junit_path}", "--color=no", "-v"]


def _pytest_args_start(command: Sequence[str]) -> int:
    for index, word in enumerate(command):
        if Path(word).name in ("pytest", "py.test"):
            return index + 1
    return len(command)


def _kind_of(command: Sequence[str]) -> str:
    names = [Path(t).name for t in command]
    if "pytest" in names or "py.test" in names:
        return "pytest"
    if names and names[0] == "cargo" and "test" in names:
        return "cargo"
    if names and names[0] == "go" and "test" in names:
        return "go"
    if names and names[0] in ("npm", "yarn", "pnpm"):
        return "npm"
    return "custom"


def _npm_has_tests(package_json: Path) -> bool:
    try:
        scripts = json.loads(package_json.read_text()).get("scripts") or {}
    except (OSError, ValueError, AttributeError):
        return False
    script = scripts.get("test") if isinstance(scripts, dict) else None
    return bool(script) and str(script).strip() != _NPM_PLACEHOLDER


def _has_python_tests(workspace: Path) -> bool:
    for root, dirs, files in os.walk(workspace):
        depth = Path(root).relative_to(workspace).parts
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("node_modules", "target", "venv")]
        if len(depth) >= 4:
            dirs[:] = []
        if any((f.startswith("test_") or f.endswith("_test.py")) and f.endswith(".py") for f in files):
            return True
    return False


def detect_runner(workspace: Path) -> tuple[str, str] | None:
    """The runner this workspace's files call for and the file that says so, or None."""
    for marker in _PYTHON_MARKERS:
        if (workspace / marker).is_file():
            return "pytest", marker
    if (workspace / "Cargo.toml").is_file():
        return "cargo", "Cargo.toml"
    if (workspace / "go.mod").is_file():
        return "go", "go.mod"
    if (workspace / "package.json").is_file() and _npm_has_tests(workspace / "package.json"):
        return "npm", "package.json"
    if _has_python_tests(workspace):
        return "pytest", "test_*.py files"
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
        return TestPlan(runner=_kind_of(argv), command=argv, explicit=True, reason="explicit command")
    found = detect_runner(workspace)
    if found is None:
        raise InputError(
            f"found no tests to run in {workspace}: no pyproject.toml/setup.py/pytest.ini, Cargo.toml, go.mod, "
            "package.json test script or test_*.py files; pass a test command"
        )
    runner, marker = found
    argv = {
        "pytest": (python, "-m", "pytest"),
        "cargo": ("cargo", "test"),
        "go": ("go", "test", "-v", "./..."),
        "npm": ("npm", "test"),
    }[runner]
    return TestPlan(runner=runner, command=argv, explicit=False, reason=marker)


def resolve_program(program: str, *, workspace: Path, path_env: str) -> str | None:
    """The executable `program` names (a path relative to the workspace, or a name on `path_env`), or None."""
    if "/" in program:
        candidate = Path(program) if Path(program).is_absolute() else workspace / program
        return str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None
    return shutil.which(program, path=path_env)
