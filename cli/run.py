"""`vibe run` (the whole pipeline on one request) and `vibe demo` (the same on a bundled sample, offline)."""

from __future__ import annotations

import logging
import sys
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli._app import app, emit, fail, load_settings, shown_command
from vibe.errors import VibeError

if TYPE_CHECKING:
    from tasks.pipeline.outcome import RunSummary
    from vibe.settings import Settings

# The model the bundled cassette was recorded with: the demo always asks for it, whatever VIBE_MODEL says.
DEMO_MODEL = "anthropic:claude-haiku-4-5"
# What `--json` prints of the run's summary.
_SUMMARY_KEYS = {"status", "attempts", "tests", "pr", "cost_usd", "run_id"}


def _show_progress() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("vibe.pipeline")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    # Prefect's logging setup also handles the root logger: print each progress line once.
    logger.propagate = False


@app.command()
def run(
    request: Annotated[str, typer.Argument(help="What to change, in plain words.")],
    repo: Annotated[Path, typer.Option("--repo", help="The git repository to change (its HEAD).")] = Path("."),
    model: Annotated[str | None, typer.Option("--model", help="Alias or provider:model (default: VIBE_MODEL).")] = None,
    max_attempts: Annotated[
        int | None, typer.Option("--max-attempts", min=1, max=20, help="Generate-and-test rounds (default 3).")
    ] = None,
    no_pr: Annotated[bool, typer.Option("--no-pr", help="Do not open a pull request; keep the patch.")] = False,
    github_repo: Annotated[
        str | None, typer.Option("--github-repo", help="OWNER/NAME on GitHub (default: from the origin URL).")
    ] = None,
    key: Annotated[str | None, typer.Option("--key", help="Request key: the same key resumes the same run.")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Start over instead of resuming the key's run.")] = False,
    test_command: Annotated[
        str | None, typer.Option("--test-command", help="The test command (default: detected).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Run the whole pipeline: index, generate, apply in a workspace, test, repair, open the pull request.

    Exit code 0 when the tests pass at the end, 1 when they do not (or the budget ran out), 2 on an error.
    """
    settings = load_settings()
    if not repo.is_dir():
        # Checked before Prefect is imported: a typo should not cost seconds.
        fail(f"{repo} is not a directory: pass the path of a git repository with --repo")
    if not as_json:
        _show_progress()
    try:
        from flows._dispatch import run_flow
        from flows.feature_pipeline import feature_pipeline

        # Without a Prefect API the same steps run as plain calls: no ephemeral server to start.
        summary = run_flow(feature_pipeline, settings=settings)(
            request=request, repo_path=str(repo), model=model, max_attempts=max_attempts, open_pr=not no_pr,
            github_repo=github_repo, key=key, test_command=test_command, fresh=fresh,
        )  # fmt: skip
    except VibeError as exc:
        fail(exc)
    emit(summary.model_dump(mode="json", include=_SUMMARY_KEYS), as_json=as_json, human=_human(summary))
    raise typer.Exit(0 if summary.status == "passed" else 1)


def _human(summary: RunSummary) -> str:
    tests = summary.tests
    lines = [
        f"{summary.status} after {summary.attempts} attempt(s): "
        f"{tests.passed} tests passed, {tests.failed} failed; "
        f"{summary.tokens} tokens, ${summary.cost_usd:.4f}",
    ]
    for step in summary.history:
        if step.tested:
            verdict = "tests pass" if not step.failed else "failures sent back to the model"
            lines.append(
                f"  attempt {step.attempt}: edited {', '.join(step.written) or 'nothing'}; "
                f"{step.passed} passed, {step.failed} failed -> {verdict}"
            )
        else:
            lines.append(f"  attempt {step.attempt}: edits not applied ({'; '.join(step.problems)[:200]})")
    cached = sum(usage.cached_calls for usage in summary.usage.values())
    if cached:
        lines.append(f"  ({cached} answer(s) came from the LLM cache: no tokens spent on them)")
    replayed = sum(usage.replayed_calls for usage in summary.usage.values())
    if replayed:
        would = sum(usage.list_cost_usd for usage in summary.usage.values())
        lines.append(
            f"  ({replayed} answer(s) replayed from a cassette: nothing was paid; live they would have cost "
            f"${would:.4f})"
        )
    if summary.stopped:
        lines.append(f"stopped: {summary.stopped}")
    if summary.resumed:
        lines.append(f"resumed run {summary.key} (finished steps were not repeated)")
    pr = summary.pr
    if pr and pr.url:
        lines.append(f"pull request: {pr.url} (branch {pr.branch})")
    elif pr:
        lines.append(f"local mode: branch {pr.branch} pushed; PR description in {pr.description_path}")
    if summary.patch:
        lines.append(f"patch: {summary.patch}")
    if summary.summary_path:
        lines.append(f"run summary: {summary.summary_path}")
    if summary.run_id:
        lines.append(f"Prefect flow run: {summary.run_id}")
    return "\n".join(lines)


def prepare_demo(settings: Settings, *, where: Path | None = None) -> tuple[Path, Path]:
    """Copy the bundled sample repository, make it a git repository with a bare `origin`, and return both.

    Args:
        settings: for `home` (the demo lives under `<home>/demo/<timestamp>/` unless `where` is given).
        where: the directory to create the demo in.

    Returns:
        `(repository, bare remote)`.
    """
    import shutil
    import subprocess
    import time

    from cli.demo import SAMPLE_REPO

    base = (where or settings.home / "demo" / time.strftime("%Y%m%d-%H%M%S")).expanduser().resolve()
    root, n = base, 1
    while root.exists() and any(root.iterdir()):
        root, n = base.with_name(f"{base.name}-{n}"), n + 1
    repo = root / "textstats"
    remote = root / "textstats-remote.git"
    shutil.copytree(SAMPLE_REPO, repo, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    identity = ["-c", "user.name=vibe demo", "-c", "user.email=demo@vibe.invalid", "-c", "commit.gpgsign=false"]

    def git(*args: str, cwd: Path = repo) -> None:
        subprocess.run(["git", *identity, *args], cwd=cwd, check=True, capture_output=True)

    git("init", "--quiet", "--bare", "--initial-branch=main", str(remote), cwd=root)
    git("init", "--quiet", "--initial-branch=main")
    git("add", "--all")
    git("commit", "--quiet", "-m", "textstats: mean and word counts")
    git("remote", "add", "origin", str(remote))
    git("push", "--quiet", "origin", "main")
    return repo, remote


def demo_settings(settings: Settings) -> Settings:
    """The demo's settings: replay from the bundled cassette, embedded cache, local PR mode, no keys at all."""
    from cli.demo import CASSETTE

    return settings.model_copy(
        update={
            "replay": "replay",
            "cassette": CASSETTE,
            "model": DEMO_MODEL,
            "fallbacks": (),
            "redis_url": None,
            "embedding_model": None,
            "github_token": None,
            "anthropic_api_key": None,
            "openai_api_key": None,
            "gemini_api_key": None,
            "xai_api_key": None,
            "budget_usd": None,
            "budget_tokens": None,
            "max_attempts": 3,
        }
    )


@app.command()
def demo(
    where: Annotated[
        Path | None, typer.Option("--dir", help="Where to create the demo (default: VIBE_HOME/demo/<time>).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Run the whole pipeline offline on a bundled sample repository (no API key, no network, no servers).

    The model's replies come from a recorded cassette: the first attempt fails a test, the failure goes back to
    the model, the second attempt passes; the branch is pushed to a local bare remote and the PR description is
    written to a file.
    """
    settings = demo_settings(load_settings())
    from tasks.testing import bwrap_available

    why_not = bwrap_available()
    if why_not is not None and settings.sandbox == "required":
        # The demo's edits and tests are the bundled cassette's, shipped with vibe and reviewed like its code:
        # trusted, so they may run unisolated. A real run's model-written tests are still refused without it.
        settings = settings.model_copy(update={"sandbox": "unsafe"})
        typer.echo(
            f"note: {why_not}; the demo's tests come from the bundled cassette (trusted), so they run without "
            "isolation here; real runs refuse model-written tests until bubblewrap is installed",
            err=True,
        )
    if not as_json:
        _show_progress()
    try:
        from cli.demo import REQUEST
        from flows._dispatch import run_flow
        from flows.feature_pipeline import feature_pipeline

        repo, remote = prepare_demo(settings, where=where)
        if not as_json:
            typer.echo(f"demo repository: {repo} (origin: {remote})", err=True)
            typer.echo(f"request: {REQUEST}", err=True)
        # Always a tracked run (on Prefect's temporary server without an API): the demo shows it in the UI.
        with _patient_ephemeral_prefect():
            summary = run_flow(feature_pipeline, settings=settings, tracked=True)(request=REQUEST, repo_path=str(repo))
    except VibeError as exc:
        fail(exc)
    payload = {**summary.model_dump(mode="json", include=_SUMMARY_KEYS), "repo": str(repo), "remote": str(remote)}
    emit(payload, as_json=as_json, human=_demo_human(summary, repo, remote))
    raise typer.Exit(0 if summary.status == "passed" else 1)


def _patient_ephemeral_prefect() -> AbstractContextManager[Any]:
    # Prefect's temporary server gets 20 s to start by default: too short on a busy 2-core machine. Its
    # telemetry only adds a writer to a fresh SQLite database while it migrates.
    from prefect.settings import (
        PREFECT_SERVER_ANALYTICS_ENABLED,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )

    return temporary_settings(
        updates={PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 120, PREFECT_SERVER_ANALYTICS_ENABLED: False}
    )


def _demo_human(summary: RunSummary, repo: Path, remote: Path) -> str:
    pr = summary.pr
    lines = [
        "",
        _human(summary),
        "",
        "Where to look:",
        f"  the sample repository:  {repo}  (its working tree is untouched)",
        f"  the pushed branch:      git -C {remote} log --stat main..{pr.branch if pr else '?'}",
        f"  the PR description:     {pr.description_path if pr else None}",
        f"  the change as a patch:  {summary.patch}",
        f"  the run's summary:      {summary.summary_path}",
    ]
    if summary.run_id:
        lines += [
            f"  the Prefect flow run:   {summary.run_id}",
            f"      see it in the UI: run `{shown_command('prefect')} server start`, open http://127.0.0.1:4200/runs",
            "      and pick the feature_pipeline run (its progress, test table and summary are its artifacts)",
        ]
    return "\n".join(lines)
