"""The command line starts fast: loading every command must not import Prefect, an LLM SDK or tree-sitter."""

from __future__ import annotations

import subprocess
import sys

_CHECK = """
import importlib, sys
import cli as cli
for name in cli._COMMAND_MODULES:
    importlib.import_module(f"cli.{name}")
heavy = sorted(m for m in ("prefect", "anthropic", "openai", "github", "git", "tree_sitter")
               if m in sys.modules)
print(",".join(heavy))
"""


def test_loading_the_cli_imports_no_heavy_library() -> None:
    out = subprocess.run([sys.executable, "-c", _CHECK], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported at CLI start-up: {out.stdout.strip()}"


def test_help_lists_the_commands() -> None:
    out = subprocess.run([sys.executable, "-m", "cli", "--help"], capture_output=True, text=True, check=True)
    assert "Usage" in out.stdout
