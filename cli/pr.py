"""`vibe pr`: commit a repository's uncommitted changes on a key's branch, push, and open or update its PR.

The user's working tree is left as it is: the changes are read through a temporary index and committed
without checking anything out (see `tasks/pull_requests/git_ops.py`), so the checked-out branch, the index
and the files do not change, and running again with the same key updates the same branch and PR.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli._app import app, emit, fail, load_settings, tracked
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
        if tracked(settings):
            from flows.open_pull_request import open_pull_request

            outcome: dict[str, Any] = open_pull_request(
                str(repo), title, body=body, key=key, base=base, draft=draft, github_repo=github_repo
            )
            if outcome.get("nothing_to_commit"):
                fail(f"nothing to commit: {repo} has no changes to publish")
            payload = {k: outcome[k] for k in ("branch", "number", "url", "created")}
            description = outcome.get("description_path")
            human = _human(payload, bool(outcome.get("local")), description)
        else:
            from tasks.pull_requests import describe, publish_pull_request

            result = publish_pull_request(
                repo, title=title, body=body, key=key, base=base, draft=draft, github_repo=github_repo,
                settings=settings,
            )
            if result.nothing_to_commit:
                fail(f"nothing to commit: {repo} has no changes that {result.base} lacks")
            payload = result.to_json_dict()
            description = str(result.description_path) if result.description_path else None
            human = describe(result)
    except VibeError as exc:
        fail(exc)
    if as_json and description is not None:
        # stdout stays one JSON object; the local-mode notice goes to stderr.
        typer.echo(f"local mode (no GITHUB_TOKEN): no pull request opened; description in {description}", err=True)
    emit(payload, as_json=as_json, human=human)


def _human(payload: dict[str, Any], local: bool, description_path: Any) -> str:
    if local:
        return (f"local mode (no GITHUB_TOKEN): pushed branch {payload['branch']}; "
                f"PR description written to {description_path}")
    verb = "opened" if payload["created"] else "updated"
    return f"{verb} pull request #{payload['number']}: {payload['url']} (branch {payload['branch']})"
