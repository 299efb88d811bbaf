"""The shared Typer application and the helpers every command uses."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer

from vibe.errors import VibeError

app = typer.Typer(
    name="vibe",
    help="Orchestrate AI coding pipelines on Prefect: generate, test, open PRs, index codebases.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def emit(payload: dict[str, Any], *, as_json: bool, human: str | None = None) -> None:
    """Print a command's result: one JSON object with `--json`, else the human text (or indented JSON)."""
    if as_json or human is None:
        typer.echo(json.dumps(payload, indent=None if as_json else 2, default=str))
    else:
        typer.echo(human)


def fail(error: VibeError | str, *, code: int = 2) -> NoReturn:
    """Print a clear one-line error (no traceback) to stderr and exit with `code`."""
    typer.echo(f"error: {error}", err=True)
    sys.exit(code)
