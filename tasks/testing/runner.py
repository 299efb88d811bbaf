"""Run a workspace's test suite in the sandbox and turn what happened into a `TestReport`.

One call: a disposable copy of the workspace (without `.git`), the environment (a Python project's own cached
virtualenv of what it declares, or a setup step's, keyed by the dependency files; never vibe's), the suite
with JUnit XML written outside the copy, a re-run of each failing test on its own (flaky or not), and clean-up
of the copy, every temporary file and process. Only the report comes back. Expected outcomes (failures, a
timeout, nothing collected, a setup that fails) are reports; bad input (a missing directory, an unknown
program) raises, and so does untrusted code on a machine without a working bubblewrap
(`SandboxUnavailableError`, unless `VIBE_SANDBOX=unsafe`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from tasks.testing.detect import TestPlan, detect_kind, plan_tests, resolve_program
from tasks.testing.pyenv import (
    DeclaredDependencies,
    create_venv,
    declared_dependencies,
    describe_pip_failure,
    environment_key,
    link_pytest,
    pip_install_argv,
    project_environment_key,
    pytest_distributions,
)
from tasks.testing.report import TestCaseResult, TestReport, trim_message
from tasks.testing.sandbox import (
    Limits,
    SandboxPolicy,
    SandboxResult,
    SandboxUnavailableError,
    bwrap_available,
    run_sandboxed,
    sandbox_env,
    unavailable_message,
)
from vibe.errors import InputError
from vibe.fsutil import file_lock
from vibe.scratch import scratch_dir

if TYPE_CHECKING:
    from vibe.settings import Settings

__all__ = ["RunnerOptions", "environment_key", "run_test_suite", "runner_options"]

logger = logging.getLogger(__name__)

_READY = ".vibe-ready"
_OUTPUT_CHARS = 20_000
# Below this many seconds left of the budget a re-run is not worth starting.
_MIN_RERUN_S = 2.0


def _setup_env(env: dict[str, str]) -> dict[str, str]:
    # The copy has no `.git`, so setuptools-scm and hatch-vcs cannot find a version and the project's install
    # would fail; a fixed version lets it build (the tests do not care about the number).
    return {**env, "SETUPTOOLS_SCM_PRETEND_VERSION": "0.0.0"}


def _venv_env(env: dict[str, str], venv: Path) -> dict[str, str]:
    return {**env, "VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"}


def _interpreter_dirs() -> list[Path]:
    # This interpreter's environment may live under /tmp (a CI checkout); the sandbox must still see it.
    return [Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent.parent]


def _cached_venv(
    env_cache_dir: Path, key: str, *, with_pip: bool, install: Callable[[Path], SandboxResult | None]
) -> tuple[Path | None, SandboxResult | None]:
    """The virtualenv `env_cache_dir/key`, built once by `install` (None when it succeeded). (venv, failed step)."""
    venv = env_cache_dir / key
    with file_lock(env_cache_dir / f"{key}.lock"):
        if (venv / _READY).is_file():
            logger.info("reusing the test environment %s", venv)
            link_pytest(venv)
            return venv, None
        shutil.rmtree(venv, ignore_errors=True)
        try:
            create_venv(sys.executable, venv, with_pip=with_pip)
        except InputError:
            shutil.rmtree(venv, ignore_errors=True)
            raise
        # Before the install, so that a pytest the project asks for is installed over vibe's, not beside it.
        link_pytest(venv)
        failed = install(venv)
        if failed is not None:
            shutil.rmtree(venv, ignore_errors=True)
            return None, failed
        (venv / _READY).write_text(f"{key}\n")
        return venv, None


def _install_step(
    argv: list[str], *, workspace: Path, run_dir: Path, limits: Limits, use_bwrap: bool
) -> Callable[[Path], SandboxResult | None]:
    """A setup step run in the copy with the network, allowed to write only into the virtualenv it builds."""

    def install(venv: Path) -> SandboxResult | None:
        env = _setup_env(_venv_env(sandbox_env(run_dir), venv))
        result = run_sandboxed(
            argv, workspace=workspace, run_dir=run_dir, env=env, limits=limits, use_bwrap=use_bwrap, network=True,
            writable=[venv], readonly=_interpreter_dirs(), output_name="setup.log",
        )  # fmt: skip
        return result if result.timed_out or result.exit_code != 0 else None

    return install


def _python_setup(
    *, workspace: Path, setup: str, env_cache_dir: Path, run_dir: Path, limits: Limits, use_bwrap: bool
) -> tuple[Path | None, SandboxResult | None]:
    """The cached virtualenv for this setup, built (with network) on first use. Returns (venv, failed setup)."""
    key = environment_key(workspace, setup, sys.executable)
    argv = ["sh", "-c", setup]
    install = _install_step(argv, workspace=workspace, run_dir=run_dir, limits=limits, use_bwrap=use_bwrap)
    return _cached_venv(env_cache_dir, key, with_pip=True, install=install)


def _project_dependencies(workspace: Path) -> DeclaredDependencies:
    dependencies = declared_dependencies(workspace)
    if not pytest_distributions():
        # vibe was installed without pytest (a deployed worker): the project's environment needs its own.
        return dataclasses.replace(dependencies, requirements=(*dependencies.requirements, "pytest"))
    return dependencies


def _project_env(
    workspace: Path, *, dependencies: DeclaredDependencies, env_cache_dir: Path, run_dir: Path, limits: Limits,
    use_bwrap: bool,
) -> tuple[Path | None, SandboxResult | None]:  # fmt: skip
    """The project's own cached virtualenv: what it declares (pip, with network) and pytest, nothing of vibe's.

    A project that declares nothing gets a virtualenv without pip and vibe's pytest: no download, no pip run.
    """
    key = project_environment_key(workspace, dependencies, sys.executable)
    if not dependencies:
        return _cached_venv(env_cache_dir, key, with_pip=False, install=lambda venv: None)
    argv = pip_install_argv(env_cache_dir / key, dependencies)
    install = _install_step(argv, workspace=workspace, run_dir=run_dir, limits=limits, use_bwrap=use_bwrap)
    return _cached_venv(env_cache_dir, key, with_pip=True, install=install)


def _uses_virtualenv(workspace: Path, command: str | Sequence[str] | None) -> bool:
    if command is not None:
        return plan_tests(workspace, command, python="python").kind.uses_virtualenv
    found = detect_kind(workspace)
    return found is not None and found[0].uses_virtualenv


@dataclass(frozen=True)
class _Sandbox:
    """What every sandboxed command of one run shares: the copy, the run directory, environment and limits."""

    workspace: Path
    run_dir: Path
    env: dict[str, str]
    limits: Limits
    use_bwrap: bool
    readonly: tuple[Path, ...]

    def run(
        self, argv: Sequence[str], *, limits: Limits | None = None, output_name: str = "output.log"
    ) -> SandboxResult:
        return run_sandboxed(
            argv, workspace=self.workspace, run_dir=self.run_dir, env=self.env, limits=limits or self.limits,
            use_bwrap=self.use_bwrap, readonly=list(self.readonly), output_name=output_name,
        )  # fmt: skip


def _rerun_passes(plan: TestPlan, test: TestCaseResult, sandbox: _Sandbox, *, limits: Limits, index: int) -> bool:
    junit_path = sandbox.run_dir / f"rerun-{index}.xml"
    argv = plan.rerun_argv(test.id, junit_path, sandbox.workspace)
    result = sandbox.run(argv, limits=limits, output_name=f"rerun-{index}.log")
    if result.timed_out or result.exit_code != 0:
        return False
    rerun = [r for r in plan.kind.parse_results(junit_path, result.output) if r.id == test.id]
    return bool(rerun) and all(r.outcome == "passed" for r in rerun)


def _rerun_failures(
    plan: TestPlan, tests: list[TestCaseResult], sandbox: _Sandbox, *, max_reruns: int
) -> list[TestCaseResult]:
    """The results with each failing test that passes when re-run alone marked flaky (within one more budget)."""
    limits = sandbox.limits
    probe = sandbox.run_dir / "rerun.xml"
    failing = [
        t for t in tests
        if t.outcome in ("failed", "error")
        and plan.kind.rerun_argv(plan.command, t.id, probe, sandbox.workspace) is not None
    ]  # fmt: skip
    reruns_started = time.monotonic()
    for index, test in enumerate(failing[:max_reruns]):
        left = limits.timeout_s - (time.monotonic() - reruns_started)
        if left < _MIN_RERUN_S:
            break
        rerun_limits = dataclasses.replace(limits, timeout_s=min(left, limits.timeout_s))
        if _rerun_passes(plan, test, sandbox, limits=rerun_limits, index=index):
            message = trim_message(f"flaky: failed, then passed when re-run alone\n{test.message}")
            tests = [
                t.model_copy(update={"outcome": "passed", "flaky": True, "message": message}) if t.id == test.id else t
                for t in tests
            ]
    return tests


def _summary(
    plan: TestPlan, report_counts: str, result: SandboxResult, tests: list[TestCaseResult], *, timeout_s: float,
    hung: str | None,
) -> str:  # fmt: skip
    if result.timed_out:
        running = f" while running {hung}" if hung else ""
        return f"timed out after {timeout_s:g} s{running}; every process of the run was killed"
    code = result.exit_code
    explained = plan.kind.explain_exit(code, tests)
    if explained is not None:
        return explained
    if code is not None and code < 0:
        return f"{'; '.join(result.notes)} (a resource limit, or a crash)"
    if not tests:
        return f"{'passed' if code == 0 else 'failed'}: exit code {code} (the runner reports no per-test results)"
    return report_counts


class RunnerOptions(TypedDict):
    """The keyword arguments of `run_test_suite` that come from the settings."""

    timeout_s: float
    memory_mb: int
    env_cache_dir: Path
    sandbox: SandboxPolicy


def runner_options(settings: Settings, timeout_s: float | None = None) -> RunnerOptions:
    """What every entry point (CLI, flow, pipeline) passes to `run_test_suite` from the settings.

    Args:
        settings: the loaded settings (`VIBE_TEST_TIMEOUT_S`, `VIBE_TEST_MEMORY_MB`, `VIBE_HOME`, `VIBE_SANDBOX`).
        timeout_s: a per-run wall-clock limit that overrides `VIBE_TEST_TIMEOUT_S`.
    """
    return RunnerOptions(
        timeout_s=timeout_s if timeout_s is not None else settings.test_timeout_s,
        memory_mb=settings.test_memory_mb,
        env_cache_dir=settings.home / "envs",
        sandbox="unsafe" if settings.sandbox == "unsafe" else "required",
    )


def _choose_bwrap(use_bwrap: bool | None, *, sandbox: SandboxPolicy, trusted_code: bool) -> tuple[bool, str | None]:
    """Whether this run uses bubblewrap, and the warning to log and report when it does not.

    Raises:
        SandboxUnavailableError: untrusted code under the "required" policy, and bubblewrap unusable or disabled.
    """
    if use_bwrap is False:
        why_not: str | None = "bubblewrap was disabled for this run (use_bwrap=False)"
    else:
        why_not = bwrap_available(os.environ.get("PATH"))
    if why_not is None:
        return True, None
    if use_bwrap is True:
        raise SandboxUnavailableError(unavailable_message(why_not))
    if not trusted_code and sandbox == "required":
        raise SandboxUnavailableError(unavailable_message(why_not))
    if trusted_code:
        return False, f"no network or file system isolation: {why_not}"
    return False, f"UNSAFE: untrusted code without network or file system isolation (VIBE_SANDBOX=unsafe): {why_not}"


def _with_warning(isolation: str, warning: str | None) -> str:
    if warning is None:
        return isolation
    if " [" in isolation:
        return isolation.replace(" [", f" [{warning}; ", 1)
    return f"{isolation} [{warning}]"


def _copy_file(source: str, target: str) -> None:
    # Regular files only: opening a FIFO would block and a socket cannot be opened; neither is project content.
    if os.path.isfile(source):
        shutil.copy2(source, target)


def _copy_tree(workspace: Path, target: Path) -> None:
    """Copy the workspace (files and symlinks as they are, without `.git`) to `target`, the run's own tree."""
    shutil.copytree(workspace, target, symlinks=True, ignore=shutil.ignore_patterns(".git"), copy_function=_copy_file)


def _unmap(text: str, tree: Path, workspace: Path) -> str:
    return text.replace(str(tree), str(workspace))


def _to_tree(command: str | Sequence[str] | None, tree: Path, workspace: Path) -> str | Sequence[str] | None:
    # A command naming paths of the workspace runs on the copy (the workspace itself is not in the sandbox).
    if command is None:
        return None
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    return [arg.replace(str(workspace), str(tree)) for arg in argv]


def _report_for_workspace(report: TestReport, tree: Path, workspace: Path) -> TestReport:
    """The report with the copy's path replaced by the workspace's, which is what users and the model know."""
    tests = [
        t.model_copy(update={"id": _unmap(t.id, tree, workspace), "message": _unmap(t.message, tree, workspace)})
        for t in report.tests
    ]
    return report.model_copy(
        update={
            "tests": tests,
            "output": _unmap(report.output, tree, workspace),
            "summary": _unmap(report.summary, tree, workspace),
            "command": [_unmap(arg, tree, workspace) for arg in report.command],
        }
    )


def run_test_suite(
    workspace: Path,
    *,
    command: str | Sequence[str] | None = None,
    timeout_s: float = 900,
    memory_mb: int = 4096,
    setup: str | None = None,
    rerun_failures: bool = True,
    env_cache_dir: Path | None = None,
    max_processes: int = 1024,
    file_size_mb: int = 1024,
    max_reruns: int = 10,
    sandbox: SandboxPolicy = "required",
    trusted_code: bool = False,
    use_bwrap: bool | None = None,
    shown_as: Path | None = None,
) -> TestReport:
    """Run the test suite of `workspace` in the sandbox, on a disposable copy, and report every test.

    The workspace is copied (without `.git`) into the run's private directory; setup, the suite and the re-runs
    run on that copy, which is removed afterwards. Nothing a test writes reaches the workspace: the report is
    all that comes back, with the copy's path shown as the workspace's.

    Args:
        workspace: the checked-out project (usually a `tasks.workspace.Workspace.path`); it is only read.
        command: the test command (a string is split like a shell would, without a shell); None detects it.
            Paths inside `workspace` in it are run on the copy.
        timeout_s: wall-clock limit of the whole run (setup and re-runs have their own budget of the same size).
        memory_mb: address-space limit of each process.
        setup: a shell command installing what the tests need (`pip install -r requirements-dev.txt pytest`).
            Python projects get a virtualenv (the setup's `pip install` goes there; vibe's pytest, and nothing
            else of vibe's, stays available behind it) under `env_cache_dir/<hash of setup and dependency
            files>`, built once and reused; without `env_cache_dir` it is private to the run. Other projects
            run the setup in the copy before each run (`npm ci`). Without a setup, a Python project gets its own
            cached virtualenv of what its files declare (`tasks.testing.pyenv`): pip with the network when it
            declares something, no pip at all when it declares nothing. Setup keeps network access; the tests
            never have it (under bubblewrap).
        rerun_failures: re-run each failing test on its own once; one that passes then counts as flaky.
        env_cache_dir: where cached setup environments live (the CLI passes `settings.home / "envs"`).
        max_processes: processes and threads the run may have at once.
        file_size_mb: largest file the run may write.
        max_reruns: at most this many failing tests are re-run (a suite with many failures is not flaky).
        sandbox: `VIBE_SANDBOX` (`runner_options` passes it): "required" refuses to run untrusted code without
            bubblewrap; "unsafe" runs it anyway, with a warning on every run and in `report.isolation`.
        trusted_code: the code is the user's own (`vibe test` on their tree), not the model's: it may run
            without bubblewrap under either policy, with the warning. Leave False for anything the model wrote.
        use_bwrap: True requires bubblewrap; None (the default) uses it where it works; False disables it, which
            only trusted code or the "unsafe" policy may do.
        shown_as: the path the report and errors name for the workspace (default: the workspace's own); the
            `run_tests` flow passes the user's repository, of which the workspace is an exported copy.

    Returns:
        The report; `report.ok` says whether the suite passed.

    Raises:
        InputError: `workspace` is not a directory, no tests can be found and no command was given, or the
            command's program does not exist.
        SandboxUnavailableError: untrusted code under the "required" policy (or `use_bwrap=True`) and
            bubblewrap does not work here or was disabled; nothing ran.
    """
    workspace = Path(workspace).expanduser().resolve()
    if not workspace.is_dir():
        raise InputError(f"{workspace} is not a directory: nothing to test")
    shown = workspace if shown_as is None else Path(shown_as)
    bwrap, warning = _choose_bwrap(use_bwrap, sandbox=sandbox, trusted_code=trusted_code)
    if warning is not None:
        logger.warning("test run of %s without bubblewrap: %s", workspace, warning)
    limits = Limits(timeout_s=timeout_s, memory_mb=memory_mb, max_processes=max_processes, file_size_mb=file_size_mb)
    started = time.monotonic()
    run_dir = scratch_dir("vibe-testrun-")
    try:
        tree = run_dir / "work" / workspace.name
        _copy_tree(workspace, tree)
        try:
            report = _run_on_copy(
                tree, run_dir=run_dir, command=_to_tree(command, tree, workspace), setup=setup, limits=limits,
                rerun_failures=rerun_failures, env_cache_dir=env_cache_dir, max_reruns=max_reruns, use_bwrap=bwrap,
                started=started,
            )  # fmt: skip
        except InputError as exc:
            if str(tree) not in str(exc):
                raise
            raise InputError(_unmap(str(exc), tree, shown)) from None  # name the workspace, not the copy
        report = report.model_copy(update={"isolation": _with_warning(report.isolation, warning)})
        return _report_for_workspace(report, tree, shown)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def _run_on_copy(
    workspace: Path, *, run_dir: Path, command: str | Sequence[str] | None, setup: str | None, limits: Limits,
    rerun_failures: bool, env_cache_dir: Path | None, max_reruns: int, use_bwrap: bool, started: float,
) -> TestReport:  # fmt: skip
    """Setup, suite and re-runs in `workspace` (the run's copy)."""
    env = sandbox_env(run_dir)
    venv, failed = _environment(
        workspace, setup=setup, command=command, run_dir=run_dir, limits=limits, env_cache_dir=env_cache_dir,
        use_bwrap=use_bwrap, started=started,
    )  # fmt: skip
    if failed is not None:
        return failed
    if venv is not None:
        env = _venv_env(env, venv)
    plan = _plan(workspace, command, env=env, venv=venv)
    readonly = (*_interpreter_dirs(), *([venv] if venv is not None else []))
    sandbox = _Sandbox(workspace, run_dir, env, limits, use_bwrap, readonly)

    junit_path = run_dir / "junit.xml"
    argv = plan.run_argv(junit_path)
    logger.info("running %s in %s", " ".join(argv), workspace)
    result = sandbox.run(argv)
    logger.info("test isolation: %s", result.isolation)
    tests = plan.kind.parse_results(junit_path, result.output)
    hung: str | None = None
    if result.timed_out and not tests:
        tests, hung = plan.kind.results_after_timeout(run_dir / "output.log", limits.timeout_s)
    if rerun_failures and not result.timed_out:
        tests = _rerun_failures(plan, tests, sandbox, max_reruns=max_reruns)
    return _suite_report(plan, tests, result, hung=hung, timeout_s=limits.timeout_s, started=started)


def _environment(
    workspace: Path, *, setup: str | None, command: str | Sequence[str] | None, run_dir: Path, limits: Limits,
    env_cache_dir: Path | None, use_bwrap: bool, started: float,
) -> tuple[Path | None, TestReport | None]:  # fmt: skip
    """The virtualenv a Python suite runs in (None for other kinds), or the report of a setup step that failed.

    With `setup`: the setup's cached virtualenv (Python) or the setup run in the copy (other kinds). Without it,
    a Python project gets its own cached environment of what it declares, never vibe's.
    """
    python_project = _uses_virtualenv(workspace, command)
    # Without a cache directory the virtualenv is private to this run; never the runner's own one.
    cache = Path(env_cache_dir).expanduser().resolve() if env_cache_dir is not None else run_dir / "envs"
    failed: SandboxResult | None
    if setup:
        if python_project:
            venv, failed = _python_setup(
                workspace=workspace, setup=setup, env_cache_dir=cache, run_dir=run_dir, limits=limits,
                use_bwrap=use_bwrap,
            )  # fmt: skip
        else:
            venv, failed = None, _setup_in_copy(setup, workspace=workspace, run_dir=run_dir, limits=limits,
                                                use_bwrap=use_bwrap)  # fmt: skip
        if failed is None:
            return venv, None
        how = "timed out" if failed.timed_out else f"exited with {failed.exit_code}"
        return None, _setup_failed(["sh", "-c", setup], f"setup failed: `{setup}` {how}", failed, started=started)
    if not python_project:
        return None, None
    dependencies = _project_dependencies(workspace)
    venv, failed = _project_env(
        workspace, dependencies=dependencies, env_cache_dir=cache, run_dir=run_dir, limits=limits, use_bwrap=use_bwrap
    )
    if failed is None:
        return venv, None
    why = "timed out" if failed.timed_out else describe_pip_failure(failed.output)
    declared = ", ".join(dependencies.files) or "the project"
    summary = f"setup failed: could not install the dependencies declared in {declared}: {why}"
    return None, _setup_failed(["pip", "install", *dependencies.requirements], summary, failed, started=started)


def _setup_in_copy(
    setup: str, *, workspace: Path, run_dir: Path, limits: Limits, use_bwrap: bool
) -> SandboxResult | None:
    """A non-Python project's setup (`npm ci`), run in the copy before each run, with the network."""
    result = run_sandboxed(
        ["sh", "-c", setup], workspace=workspace, run_dir=run_dir, env=_setup_env(sandbox_env(run_dir)),
        limits=limits, use_bwrap=use_bwrap, network=True, readonly=_interpreter_dirs(), output_name="setup.log",
    )  # fmt: skip
    return result if result.timed_out or result.exit_code != 0 else None


def _setup_failed(command: list[str], summary: str, failed: SandboxResult, *, started: float) -> TestReport:
    return TestReport(
        errors=1,
        exit_code=failed.exit_code,
        timed_out=failed.timed_out,
        duration_s=time.monotonic() - started,
        isolation=failed.isolation,
        command=command,
        runner="setup",
        summary=summary,
        output=failed.output[-_OUTPUT_CHARS:],
    )


def _plan(workspace: Path, command: str | Sequence[str] | None, *, env: dict[str, str], venv: Path | None) -> TestPlan:
    """The suite's plan, with its program checked to exist (the virtualenv's interpreter for Python projects)."""
    # Only Python suites use the interpreter, and they always have their virtualenv.
    python = str(venv / "bin" / "python") if venv is not None else "python3"
    plan = plan_tests(workspace, command, python=python)
    if resolve_program(plan.command[0], workspace=workspace, path_env=env["PATH"]) is None:
        hint = "" if plan.explicit else f" (needed for this project's tests: found {plan.reason})"
        raise InputError(f"command not found: {plan.command[0]!r}{hint}")
    return plan


def _suite_report(
    plan: TestPlan, tests: list[TestCaseResult], result: SandboxResult, *, hung: str | None, timeout_s: float,
    started: float,
) -> TestReport:  # fmt: skip
    counts = {
        "passed": sum(t.outcome == "passed" and not t.flaky for t in tests),
        "failed": sum(t.outcome == "failed" for t in tests),
        "errors": sum(t.outcome == "error" for t in tests),
        "skipped": sum(t.outcome == "skipped" for t in tests),
        "flaky": sum(t.flaky for t in tests),
    }
    draft = TestReport(**counts, tests=tests)
    return TestReport(
        **counts,
        tests=tests,
        timed_out=result.timed_out,
        exit_code=result.exit_code,
        duration_s=time.monotonic() - started,
        isolation=result.isolation,
        # What a person would type; the result-file arguments pointed into a directory that is gone now.
        command=list(plan.command),
        runner=plan.runner,
        summary=_summary(plan, draft.counts_line(), result, tests, timeout_s=timeout_s, hung=hung),
        output=result.output[-_OUTPUT_CHARS:],
    )
