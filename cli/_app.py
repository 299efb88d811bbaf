"""The shared Typer application and the helpers every command uses."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from vibe.errors import VibeError
from vibe.settings import Settings

app = typer.Typer(
    name="vibe",
    help="Orchestrate AI coding pipelines on Prefect: generate, test, open PRs, index codebases.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: paragraphs re-wrapped to the terminal (a docstring's line breaks are not kept mid-sentence)
    # and flags shown as flags (`--json`), not as `--json <bool>` as typer's rich panels show them.
    rich_markup_mode=None,
)


def emit(payload: Mapping[str, object], *, as_json: bool, human: str | None = None) -> None:
    """Print a command's result: one JSON object with `--json`, else the human text (or indented JSON)."""
    if as_json or human is None:
        typer.echo(json.dumps(payload, indent=None if as_json else 2, default=str))
    else:
        typer.echo(human)


def fail(error: VibeError | str, *, code: int = 2) -> NoReturn:
    """Print a clear one-line error (no traceback) to stderr and exit with `code`."""
    typer.echo(f"error: {error}", err=True)
    sys.exit(code)


def shown_command(name: str) -> str:
    """How to type this environment's `name` (`vibe`, `prefect`) in a hint: plain when the shell finds this one.

    After `make` the commands live in `.venv/bin`, which need not be on the user's PATH: a hint saying `vibe
    status ...` would then fail as printed, so it names the program by its path.
    """
    beside = Path(sys.executable).with_name(name)
    if not beside.is_file():
        return name
    entries = os.environ.get("PATH", "").split(os.pathsep)
    if os.environ.get("UV_RUN_RECURSION_DEPTH") and entries and Path(entries[0]).resolve() == beside.parent.resolve():
        # `uv run` (as `make demo` uses) put this environment first on PATH for this process only.
        entries = entries[1:]
    found = shutil.which(name, path=os.pathsep.join(entries))
    if found is not None and Path(found).resolve() == beside.resolve():
        return name
    return str(beside)


def load_settings() -> Settings:
    """Build the one Settings object of this invocation from the environment; a bad value is a clear error."""
    from vibe.settings import load_settings as load

    try:
        return load()
    except VibeError as exc:
        fail(exc)


@app.command()
def version() -> None:
    """Print the installed version of vibe-pipelines."""
    from vibe import __version__

    typer.echo(__version__)


def _print_version(value: bool) -> None:
    if value:
        from vibe import __version__

        typer.echo(__version__)
        raise typer.Exit(0)


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_print_version, help="Print the version and exit."),
    ] = False,
) -> None:
    """Orchestrate AI coding pipelines on Prefect: generate, test, open PRs, index codebases."""
