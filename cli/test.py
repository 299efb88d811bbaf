"""`vibe test PATH`: run a repository's tests in the sandbox and print per-test results.

The repository's working tree as it is (uncommitted changes included) is checked out into a disposable
workspace first, so the run leaves nothing in it. Exit code: 0 when the tests passed, 1 when they did not,
2 on bad input (a missing path, not a git repository, a command that does not exist).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli._app import app, emit, fail, load_settings
from vibe.errors import VibeError


@app.command(name="test")
def run_test_command(
    path: Annotated[Path, typer.Argument(help="The repository whose tests to run.")],
    command: Annotated[
        str | None, typer.Option("--command", help="The test command (default: detected from the files).")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Wall-clock limit in seconds (default: VIBE_TEST_TIMEOUT_S).")
    ] = None,
    setup: Annotated[
        str | None, typer.Option("--setup", help="Command installing test dependencies (cached per dependency files).")
    ] = None,
    ref: Annotated[
        str | None,
        typer.Option("--ref", help="Test this commit (a branch, tag or sha) instead of the working tree as it is."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Run the tests of PATH in a sandbox (no network, limits, clean environment) and report each test."""
    settings = load_settings()
    if timeout is not None and timeout <= 0:
        fail("--timeout must be a positive number of seconds")
    # The working tree as the user sees it (uncommitted changes included), unless they asked for a commit.
    include_uncommitted = ref is None
    try:
        from flows._dispatch import run_flow
        from flows.run_tests import run_tests

        # Without a patch the code is the user's own: it may run without bubblewrap (with a warning).
        report = run_flow(run_tests, settings=settings)(
            str(path), ref or "HEAD", command=command, timeout_s=timeout, setup=setup,
            include_uncommitted=include_uncommitted,
        )  # fmt: skip
    except VibeError as exc:
        fail(exc)
    # The last human line is the plain `N passed, N failed` form that CI log readers understand.
    counts = f"{report.passed + report.flaky} passed, {report.failed + report.errors} failed"
    human = f"{report.to_markdown()}\n{counts}" + (f", {report.skipped} skipped" if report.skipped else "")
    emit(report.to_json_dict(), as_json=as_json, human=human)
    raise typer.Exit(0 if report.ok else 1)
