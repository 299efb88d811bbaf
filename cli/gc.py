"""`vibe gc`: remove what runs that died left behind (scratch directories, worktrees older versions registered).

The same clean-up runs at the start of every pipeline run; this command is for a machine where no run will
start soon, or to see what is there (`--dry-run`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli._app import app, emit, fail
from vibe.errors import VibeError


@app.command()
def gc(
    repos: Annotated[
        list[Path] | None,
        typer.Option("--repo", help="A repository to prune worktrees of (repeatable); default: none."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be removed.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Remove scratch directories of dead runs and the worktrees they registered, then `git worktree prune`."""
    from tasks.workspace import collect_leftovers

    targets: list[Path | None] = list(repos) if repos else [None]
    found = []
    try:
        for repo in targets:
            found += collect_leftovers(repo, dry_run=dry_run)
    except VibeError as exc:
        fail(exc)
    items = [{"path": str(item.path), "kind": item.kind, "removed": item.removed} for item in found]
    verb = "would remove" if dry_run else "removed"
    lines = [f"{verb} {item.kind} {item.path}" for item in found] or ["nothing left behind by dead runs"]
    emit({"dry_run": dry_run, "leftovers": items}, as_json=as_json, human="\n".join(lines))
