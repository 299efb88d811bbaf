"""The `vibe` command line.

Each command group lives in its own module and registers itself on the shared `app`. Command modules import
heavy libraries (prefect, SDKs, tree-sitter) inside the command functions, so `vibe --help` and the quick
commands start fast and never start a Prefect server.
"""

from __future__ import annotations

import importlib

from cli._app import app

# Modules whose import registers commands on `app`. Order is the order of `vibe --help`.
_COMMAND_MODULES: tuple[str, ...] = ("run", "test", "pr", "llm", "ops", "worker", "index", "gc")


def main() -> None:
    """Entry point of the `vibe` console script."""
    for name in _COMMAND_MODULES:
        importlib.import_module(f"cli.{name}")
    app()
