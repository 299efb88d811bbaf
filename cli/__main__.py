"""`python -m cli` runs the `vibe` command line."""

from __future__ import annotations

from cli import main

main()
