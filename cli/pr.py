"""`vibe pr`: commit a repository's uncommitted changes on a key's branch, push, and open or update its PR.

The user's working tree is left as it is: the changes are read through a temporary index and committed
without checking anything out (see `tasks/pull_requests/git_ops.py`), so the checked-out branch, the index
and the files do not change, and running again with the same key updates the same branch and PR.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli._app import app, emit, fail, load_settings
from vibe.errors import VibeError


@app.command()
def pr(
    repo: Annotated[Path, typer.Option("--repo", help="The repository's working tree.")],
    title: Annotated[str, typer.Option("--title", help="The pull request title.")],
    body: Annotated[str, typer.Option("--body", help="The pull request description.")] = "",
    key: Annotated[str | None, typer.Option("--key", help="Stable key: the same key updates the same PR.")] = None,
    base: Annotated[str | None, typer.Option("--base", help="Target branch (default: the repo's default).")] = None,
    draft: Annotated[bool, typer.Option("--draft", help="Open the pull request as a draft.")] = False,
    github_repo: Annotated[
        str | None, typer.Option("--github-repo", help="OWNER/NAME on GitHub (default: from the origin URL).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Commit the repository's uncommitted changes, push them, and open or update the pull request."""
    settings = load_settings()
    try:
        from flows._dispatch import run_flow
        from flows.open_pull_request import open_pull_request
        from tasks.pull_requests import describe

        result = run_flow(open_pull_request, settings=settings)(
            str(repo), title, body=body, key=key, base=base, draft=draft, github_repo=github_repo
        )
    except VibeError as exc:
        fail(exc)
    if result.nothing_to_commit:
        fail(f"nothing to commit: {repo} has no changes that {result.base} lacks")
    if as_json and result.description_path is not None:
        # stdout stays one JSON object; the local-mode notice goes to stderr.
        typer.echo(
            f"local mode (no GITHUB_TOKEN): no pull request opened; description in {result.description_path}",
            err=True,
        )
    emit(result.to_json_dict(), as_json=as_json, human=describe(result))
