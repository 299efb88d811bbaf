"""`python -m vibe` runs the command line."""

from __future__ import annotations

from vibe.cli import main

main()
