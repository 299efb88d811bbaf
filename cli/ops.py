"""Operations commands: `vibe setup`, `vibe submit ...`, `vibe status RUN_ID`.

They talk to the Prefect API in `PREFECT_API_URL` (or the active Prefect profile) and never start an
ephemeral server: a queued run must outlive this process.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from cli._app import app, emit, fail, load_settings, shown_command
from vibe.errors import VibeError

submit_app = typer.Typer(
    name="submit",
    help="Queue a run on the Prefect work pool by priority; prints the run id (see `vibe status`).",
    no_args_is_help=True,
)
app.add_typer(submit_app, name="submit")

_PRIORITIES = ("critical", "high", "medium", "low")

Priority = Annotated[
    str,
    typer.Option("--priority", "-p", help="Queue: critical, high, medium or low (served in that order)."),
]
Key = Annotated[
    str | None,
    typer.Option("--key", help="Idempotency key: submitting the same key again returns the same run."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


@app.command(name="setup")
def setup_command(as_json: AsJson = False) -> None:
    """Create or update the work pool, queues, limits, variables, secrets and crash automation (idempotent)."""
    settings = load_settings()
    try:
        from deployments.setup import run_setup

        report = run_setup(settings)
    except VibeError as exc:
        fail(exc)
    lines = [f"Prefect API: {report.api_url}"]
    lines += [f"  changed: {line}" for line in report.changed]
    lines.append(f"{len(report.changed)} changed, {len(report.unchanged)} already up to date")
    if report.changed:
        lines.append(
            f"next: `{shown_command('prefect')} deploy --all` in the project folder, "
            f"then `{shown_command('vibe')} worker start --pool {settings.work_pool}`"
        )
    payload = {"api_url": report.api_url, "changed": report.changed, "unchanged": report.unchanged}
    emit(payload, as_json=as_json, human="\n".join(lines))


def _submit(
    kind: str,
    parameters: dict[str, Any],
    priority: str,
    key: str | None,
    as_json: bool,
    *,
    optional: dict[str, Any] | None = None,
) -> None:
    """Queue one run of `kind`: `parameters` as given, plus those of `optional` that are set (not None)."""
    parameters = {**parameters, **{name: value for name, value in (optional or {}).items() if value is not None}}
    settings = load_settings()
    if priority not in _PRIORITIES:
        fail(f"--priority must be one of {', '.join(_PRIORITIES)}, not {priority!r}")
    try:
        from deployments.submit import deployment_name, submit_run

        run_id = submit_run(settings, kind, parameters, priority=priority, key=key)
        deployment = deployment_name(kind)
    except VibeError as exc:
        fail(exc)
    emit(
        {"run_id": str(run_id), "deployment": deployment, "priority": priority},
        as_json=as_json,
        human=f"queued {run_id} ({deployment}, {priority}); follow it with `{shown_command('vibe')} status {run_id}`",
    )


def _repo(path: Path) -> str:
    # The worker may run elsewhere with another working directory: send an absolute path.
    resolved = path.expanduser().resolve()
    if not resolved.is_dir():
        fail(f"{path} is not a directory")
    return str(resolved)


@submit_app.command(name="index")
def submit_index(
    path: Annotated[Path, typer.Argument(help="The repository to index.")],
    full: Annotated[bool, typer.Option("--full", help="Re-index everything, not only what changed.")] = False,
    priority: Priority = "medium",
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """Queue an index_codebase run for PATH."""
    _submit("index", {"repo_path": _repo(path), "full": full}, priority, key, as_json)


@submit_app.command(name="test")
def submit_test(
    path: Annotated[Path, typer.Argument(help="The repository whose tests to run.")],
    ref: Annotated[str, typer.Option("--ref", help="The commit, branch or tag to test.")] = "HEAD",
    command: Annotated[str | None, typer.Option("--command", help="The test command (default: detected).")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Wall-clock limit in seconds.")] = None,
    patch_file: Annotated[
        Path | None, typer.Option("--patch", help="A git patch file to apply before testing.")
    ] = None,
    priority: Priority = "medium",
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """Queue a run_tests run for PATH."""
    if timeout is not None and timeout <= 0:
        fail("--timeout must be a positive number of seconds")
    repo_path = _repo(path)
    patch: str | None = None
    if patch_file is not None:
        try:
            patch = patch_file.read_text(encoding="utf-8")
        except OSError as exc:
            fail(f"cannot read the patch {patch_file}: {exc.strerror}")
    optional = {"command": command, "timeout_s": timeout, "patch": patch}
    _submit("test", {"repo_path": repo_path, "ref": ref}, priority, key, as_json, optional=optional)


@submit_app.command(name="pr")
def submit_pr(
    path: Annotated[Path, typer.Argument(help="The repository whose branch to push and open a PR for.")],
    title: Annotated[str, typer.Option("--title", help="The pull request's title.")],
    body: Annotated[str, typer.Option("--body", help="The pull request's description.")] = "",
    base: Annotated[str | None, typer.Option("--base", help="The branch to merge into (default: the repo's).")] = None,
    draft: Annotated[bool, typer.Option("--draft", help="Open it as a draft.")] = False,
    github_repo: Annotated[
        str | None, typer.Option("--github-repo", help="owner/name on GitHub (default: from the remote).")
    ] = None,
    pr_key: Annotated[
        str | None, typer.Option("--pr-key", help="Stable key of the change (reuses its branch and PR).")
    ] = None,
    priority: Priority = "high",
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """Queue an open_pull_request run for PATH."""
    parameters = {"repo_path": _repo(path), "title": title, "body": body, "draft": draft}
    optional = {"base": base, "github_repo": github_repo, "key": pr_key}
    _submit("pr", parameters, priority, key, as_json, optional=optional)


@submit_app.command(name="run")
def submit_pipeline(
    request: Annotated[str, typer.Argument(help="What to change, in plain words.")],
    repo: Annotated[Path, typer.Option("--repo", help="The repository to change.")],
    model: Annotated[str | None, typer.Option("--model", help="Model or alias (default: VIBE_MODEL).")] = None,
    max_attempts: Annotated[
        int | None, typer.Option("--max-attempts", min=1, help="Generate/test/repair rounds at most.")
    ] = None,
    no_pr: Annotated[bool, typer.Option("--no-pr", help="Stop before opening a pull request.")] = False,
    github_repo: Annotated[
        str | None, typer.Option("--github-repo", help="owner/name on GitHub (default: from the remote).")
    ] = None,
    priority: Priority = "medium",
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """Queue a feature_pipeline run: index, generate, test and repair, open a pull request."""
    parameters = {"request": request, "repo_path": _repo(repo), "open_pr": not no_pr}
    optional = {"model": model, "max_attempts": max_attempts, "github_repo": github_repo}
    _submit("run", parameters, priority, key, as_json, optional=optional)


@app.command(name="status")
def status_command(
    run_id: Annotated[str, typer.Argument(help="The run id that `vibe submit` printed.")],
    wait: Annotated[bool, typer.Option("--wait", help="Poll until the run is over, then print.")] = False,
    as_json: AsJson = False,
) -> None:
    """Show a run's state, progress and artifacts."""
    settings = load_settings()
    try:
        from deployments.status import parse_run_id, run_status

        rid = parse_run_id(run_id)
        status = run_status(settings, rid)
        while wait and not status.final:
            time.sleep(2.0)
            status = run_status(settings, rid)
    except VibeError as exc:
        fail(exc)
    payload = status.model_dump(mode="json")
    progress = "-" if status.progress is None else f"{status.progress:.0f}%"
    lines = [
        f"{status.name} ({status.run_id})",
        f"  state:    {status.state_name}" + (f" - {status.message}" if status.message else ""),
        f"  progress: {progress}",
        f"  queue:    {status.deployment or '-'} on {status.queue or '-'}",
    ]
    lines += [f"  artifact: {a.key or '-'} ({a.type}) {a.description or ''}".rstrip() for a in status.artifacts]
    emit(payload, as_json=as_json, human="\n".join(lines))
