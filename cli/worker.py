"""`vibe worker start`: a Prefect process worker for the vibe pool that stops cleanly.

On SIGTERM or SIGINT it claims no new run, lets the runs in flight finish for up to the grace period, hands
the rest back to the pool (another worker resumes them), and exits 0. See `deployments/worker.py`.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from cli._app import app, fail, load_settings
from vibe.errors import InputError, VibeError

worker_app = typer.Typer(
    name="worker",
    help="Run flow runs of the work pool; stops cleanly on SIGTERM/SIGINT (finishes or hands back its runs).",
    no_args_is_help=True,
)
app.add_typer(worker_app, name="worker")


@worker_app.command(name="start")
def start_command(
    pool: Annotated[
        str | None, typer.Option("--pool", "-p", help="The work pool to poll (default: VIBE_WORK_POOL, `vibe`).")
    ] = None,
    queues: Annotated[
        list[str] | None,
        typer.Option("--queue", "-q", help="Only these queues (repeatable; default: every queue of the pool)."),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="The worker's name (default: random).")] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", "-l", min=1, help="Runs at once on this worker (default: VIBE_WORKER_LIMIT, none)."),
    ] = None,
    grace_s: Annotated[
        float | None,
        typer.Option(
            "--grace-s",
            min=0,
            help="On SIGTERM/SIGINT, seconds runs in flight may go on before they are handed back "
            "(default: VIBE_WORKER_GRACE_S, 30). A second signal hands them back at once.",
        ),
    ] = None,
    launch: Annotated[
        str | None,
        typer.Option(
            "--launch",
            help="How each flow run's process starts: `prefork` (forked from a warm parent that has imported "
            "Prefect and the flows: well under a second) or `engine` (a new `python -m prefect.engine`, "
            "several seconds). Default: VIBE_WORKER_LAUNCH, prefork.",
        ),
    ] = None,
) -> None:
    """Start a process worker; on SIGTERM/SIGINT it finishes or hands back its runs, then exits."""
    settings = load_settings()
    try:
        from deployments.worker import Launch, WorkerOptions, serve_worker

        if launch is not None and launch not in {item.value for item in Launch}:
            raise InputError(f"--launch must be one of {', '.join(item.value for item in Launch)}, not {launch!r}")
        options = WorkerOptions.from_settings(
            settings, pool=pool, queues=tuple(queues or ()), name=name, limit=limit, grace_s=grace_s, launch=launch
        )
        report = serve_worker(settings, options, printer=lambda line: typer.echo(line, err=True))
    except VibeError as exc:
        fail(exc)
    # 0: every run in flight finished or went back to the pool; 1: some could not be handed back in time.
    sys.exit(0 if report.clean else 1)
