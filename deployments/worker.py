"""`vibe worker start`: a Prefect process worker that stops cleanly on SIGTERM or SIGINT.

On the first SIGTERM or SIGINT the worker

1. claims no new run: its polling loop is cancelled at once (a poll is cancelled before it claims anything;
   claiming itself never awaits, so no run is half-claimed), while its heartbeat to the server goes on;
2. lets the runs in flight go on for up to `grace_s` seconds; a run that ends in time ends in its own state;
3. hands back every run still going at the deadline: the run goes back to `AwaitingRetry` (a Scheduled
   state, scheduled now), so any worker of the pool picks it up at once and the pipeline resumes from its
   journal; its process is stopped; the server frees the run's deployment concurrency slot on that
   transition, and the flow's own global-limit slots are released as the engine unwinds;
4. prints what it did ("finished 1 run, handed back 2") and exits 0.

A second signal during the grace period hands back at once.

Why it is built this way (Prefect 3.9.1):

- `prefect worker start` turns SIGTERM into SIGINT and its teardown stops every flow-run process without
  telling the engine why; measured with 3.9.1, the worker exits within 2 s and the run stays Running until
  our heartbeat automation marks it Crashed. Prefect's own hand-back exists, but only in
  `prefect flow-run execute`: `PREFECT_FLOW_RUN_EXECUTE_SIGTERM_BEHAVIOR=reschedule` is read by that
  supervisor alone (`prefect/cli/flow_run.py`), and a process worker does not run it, so on a worker the
  variable changes nothing. Making the pool's `command` that supervisor would cost a second Python process
  per run, and it shares the worker's process group, so a Ctrl-C would reschedule every run at once instead
  of letting it finish.
- So this module reuses the pieces that supervisor is made of, in the worker: the Attempt Control Session
  (`ControlChannel.signal(run, "reschedule")`: the engine learns, before its SIGTERM, that the supervisor
  owns the run's next state, so it unwinds - releasing its concurrency slots - and exits 0 without proposing
  Crashed), `propose_state(AwaitingRetry())` through the client (the server's `ReleaseFlowConcurrencySlots`
  rule frees the deployment slot on exactly this transition), and `ProcessManager.kill` (SIGKILL at once when
  the engine never acknowledged, as Prefect does, because an unacknowledged engine would overwrite the
  reschedule with Crashed). `_hand_back` follows `prefect.cli.flow_run.execute` step by step.
- Those pieces live inside `ProcessWorker.run`'s private `FlowRunExecutorContext`, so `DrainingProcessWorker`
  overrides `run` with the same body (same executor) plus a hand-back waiter per attempt.
- The default launch (`Launch.PREFORK`, `--launch prefork`) forks each run's process from a warm zygote that
  has imported Prefect and the deployed flows once (`deployments.prefork`, `deployments._zygote`): the run is
  what `python -m prefect.engine` would run, in a process of its own, less ~3 s of imports. It replaces only
  the engine command; a job with another `command` is started as that command.
- With `--launch engine`, every run starts as `<this interpreter> -m prefect.engine` (Prefect's default
  `command`), even when the job sets none: `ProcessWorker.run` would then use Prefect's workspace
  supervisor, which runs the pull steps and execs a second interpreter that imports Prefect and the flow
  again (measured: ~4 s more per run, the pause logged after `EventsWorker - Still processing items`).
  The engine runs the pull steps and the flow in one process. Flow-run processes (either launch) are started
  in their own session, so a Ctrl-C or a group-wide SIGTERM reaches the worker only.
- The polling and heartbeat loops are `BaseWorker.start`'s own (`critical_service_loop` over
  `get_and_submit_flow_runs` and `_sync_and_initialize`), driven here so that polling can stop while the
  heartbeat goes on and the worker then leaves through its normal teardown (worker-stopped event included).
- Hard kills: a worker killed with SIGKILL gets no say. With the prefork launch its flow-run processes die
  with it (the zygote gets SIGTERM from the kernel, `PR_SET_PDEATHSIG`, and SIGTERMs them: the engine reports
  each run Crashed at once; they get SIGKILL if the zygote itself dies). With `--launch engine` they (in their
  own sessions) either finish by themselves or, if they die, stop sending heartbeats, and the crash
  automation of `vibe setup` marks their runs Crashed. That automation treats `AwaitingRetry` as an end of the
  attempt, so a handed-back run that waits longer than `VIBE_CRASH_AFTER_S` for a worker is not crashed.

Nothing here builds `Settings`; the CLI passes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import anyio
import anyio.abc
from prefect.client.schemas.objects import StateType
from prefect.exceptions import Abort, ObjectNotFound, Pause
from prefect.flows import load_flow_from_flow_run
from prefect.runner._control_channel import ControlSignalStatus
from prefect.runner._flow_run_executor import (
    FlowRunExecutionResult,
    FlowRunExecutor,
    FlowRunExecutorContext,
)
from prefect.runner._process_manager import ProcessHandle
from prefect.runner._starter_engine import EngineCommandStarter
from prefect.settings import PREFECT_WORKER_QUERY_SECONDS
from prefect.states import AwaitingRetry
from prefect.utilities.engine import propose_state
from prefect.utilities.processutils import command_from_string
from prefect.utilities.services import critical_service_loop
from prefect.workers.process import ProcessJobConfiguration, ProcessWorker, ProcessWorkerResult

from deployments import catalog
from deployments._client import api_url, prefect_api
from deployments._secrets import SecretCache
from deployments.prefork import PreforkStarter, Zygote, deployed_flow_modules
from deployments.steps import project_root
from vibe.errors import ConfigError
from vibe.settings import Settings

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

Printer = Callable[[str], None]

# After the grace period, how long handing back may take before the worker gives up on a run (it then stops
# the run's process without an intent, and the run ends Crashed instead of Running).
HAND_BACK_TIMEOUT_S = 60.0
_POLL_S = 0.2
PREFORK_PREFETCH_S = 1.0


class _Outcome(StrEnum):
    FINISHED = "finished"  # the process ended by itself
    HANDED_BACK = "handed back"  # AwaitingRetry accepted, process stopped
    LEFT_ALONE = "left alone"  # the engine had already reported a final state
    FAILED = "failed"  # the reschedule was not recorded; the worker reports the run Crashed


@dataclass
class ShutdownReport:
    """What a stopping worker did with the runs it had in flight when it was told to stop."""

    finished: list[UUID] = field(default_factory=list)
    handed_back: list[UUID] = field(default_factory=list)
    failed: list[UUID] = field(default_factory=list)
    signals: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """Every run in flight either ended by itself or went back to the pool."""
        return not self.failed

    def summary(self) -> str:
        """One line, e.g. `finished 1 run, handed back 2`."""

        def runs(n: int) -> str:
            return f"{n} run{'' if n == 1 else 's'}"

        parts = [f"finished {runs(len(self.finished))}", f"handed back {len(self.handed_back)}"]
        if self.failed:
            parts.append(f"could not hand back {len(self.failed)} (stopped: they end Crashed)")
        return ", ".join(parts)


class ShutdownRequest:
    """The stop signals a worker has received: the first asks for a drain, the second for a hand-back now.

    Create it inside the event loop (it holds anyio events); `receive` is safe to call from a loop signal
    handler.
    """

    def __init__(self) -> None:
        self.stop = anyio.Event()
        self.hurry = anyio.Event()
        self.received: list[str] = []

    def receive(self, name: str) -> None:
        """Record one signal (or any other reason to stop): the first stops, the second hurries."""
        self.received.append(name)
        if self.stop.is_set():
            self.hurry.set()
        self.stop.set()


@dataclass
class _Attempt:
    flow_run_id: UUID
    requested: anyio.Event
    handing_back: bool = False
    outcome: _Outcome = _Outcome.FINISHED


class DrainingProcessWorker(ProcessWorker):
    """A `ProcessWorker` that can stop claiming runs, wait for its runs, and hand the rest back to the pool.

    It is a process worker for the pool's point of view (`type = "process"`); its dispatch key differs only
    so that defining it does not replace `ProcessWorker` in Prefect's worker registry.
    """

    @classmethod
    def __dispatch_key__(cls) -> str:
        return "vibe-draining-process"

    def __init__(self, *args: Any, zygote: Zygote | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # With a zygote (the prefork launch), runs that use the engine command are forked from it.
        self._zygote = zygote
        # Forked runs get the Secret block values from here (one API read per TTL), not one read per block each.
        self._secrets = SecretCache(catalog.SECRET_BLOCKS.values()) if zygote is not None else None
        self._attempts: dict[UUID, _Attempt] = {}
        self._draining = False
        self._handing_back = False
        self._report = ShutdownReport()

    # --- one flow run ------------------------------------------------------------------------------
    def _executor(
        self, ctx: FlowRunExecutorContext, flow_run: FlowRun, configuration: ProcessJobConfiguration, root: Path
    ) -> FlowRunExecutor:
        if self._zygote is not None and _is_engine_command(configuration.command):
            prefork = PreforkStarter(
                self._zygote,
                cwd=root,
                env=configuration.env,
                stream_output=configuration.stream_output,
                control_channel=ctx.control_channel,
                secrets=self._secrets,
            )
            return ctx.create_executor(
                flow_run, prefork, resolve_flow=load_flow_from_flow_run, propose_submitting=False
            )
        # Always the engine command (`configuration.command` is `<this interpreter> -m prefect.engine` unless
        # the job sets one): it runs the pull steps and then the flow in one process. Without a job `command`,
        # `ProcessWorker.run` would use Prefect's workspace supervisor instead, which runs the pull steps and
        # then execs a second interpreter that imports Prefect and the flow again (~4 s more per run here).
        starter = EngineCommandStarter(
            command=configuration.command,
            cwd=root,
            env=configuration.env,
            stream_output=configuration.stream_output,
            control_channel=ctx.control_channel,
            # Unlike ProcessWorker: its own session, so a group-wide signal meant for the worker does
            # not reach the run before the worker has decided what to do with it.
            isolate_process_group=True,
        )
        return ctx.create_executor(flow_run, starter, resolve_flow=load_flow_from_flow_run, propose_submitting=False)

    async def run(
        self,
        flow_run: FlowRun,
        configuration: ProcessJobConfiguration,
        task_status: anyio.abc.TaskStatus[int] | None = None,
    ) -> ProcessWorkerResult:
        """Run one flow run's process, as `ProcessWorker.run` does, and hand it back when asked to."""
        if task_status is None:
            task_status = anyio.TASK_STATUS_IGNORED
        attempt = _Attempt(flow_run.id, anyio.Event())
        execution: FlowRunExecutionResult | None = None
        pid: int | None = None
        working_dir_ctx: contextlib.AbstractContextManager[Any] = (
            contextlib.nullcontext(configuration.working_dir)
            if configuration.working_dir
            else tempfile.TemporaryDirectory(suffix="prefect")
        )
        try:
            with working_dir_ctx as working_dir, warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                async with FlowRunExecutorContext() as ctx:
                    root = Path(await anyio.Path(working_dir).resolve())
                    executor = self._executor(ctx, flow_run, configuration, root)
                    async with anyio.create_task_group() as group:

                        async def execute(
                            *, task_status: anyio.abc.TaskStatus[ProcessHandle] = anyio.TASK_STATUS_IGNORED
                        ) -> None:
                            nonlocal execution
                            execution = await executor.submit(task_status=task_status)
                            if not attempt.handing_back:
                                group.cancel_scope.cancel()  # ended by itself: stop waiting for a hand-back

                        async def hand_back_when_asked() -> None:
                            await attempt.requested.wait()
                            attempt.handing_back = True
                            attempt.outcome = await self._hand_back(ctx, flow_run, group.cancel_scope)

                        handle: ProcessHandle = await group.start(execute)
                        if handle.pid is None:
                            raise RuntimeError("Flow run process has no PID")
                        pid = handle.pid
                        self._attempts[flow_run.id] = attempt
                        if self._handing_back:
                            attempt.requested.set()
                        group.start_soon(hand_back_when_asked)
                        task_status.started(handle.pid)
        finally:
            self._attempts.pop(flow_run.id, None)
            if self._draining and pid is not None:
                self._record(attempt)

        if attempt.outcome is _Outcome.HANDED_BACK:
            await self._cancel_unfinished_task_runs(flow_run)
        if attempt.outcome is _Outcome.FAILED:
            # Non-zero: BaseWorker proposes Crashed, so the run does not stay Running.
            return ProcessWorkerResult(status_code=1, identifier=str(pid))
        if attempt.handing_back and execution is None:
            return ProcessWorkerResult(status_code=0, identifier=str(pid))
        if execution is None or execution.status_code is None:
            raise RuntimeError("Failed to start flow run process.")
        return ProcessWorkerResult(status_code=execution.status_code, identifier=str(execution.handle.pid))

    async def _hand_back(self, ctx: FlowRunExecutorContext, flow_run: FlowRun, scope: anyio.CancelScope) -> _Outcome:
        """Reschedule the run and stop its process: `prefect flow-run execute`'s SIGTERM path, in the worker."""
        run_id = flow_run.id
        logger = self.get_flow_run_logger(flow_run)
        status = await ctx.control_channel.signal(run_id, "reschedule")
        if status is ControlSignalStatus.ALREADY_CONCLUDED:
            logger.info("Worker %r is stopping; the run already reported its final state.", self.name)
            return _Outcome.LEFT_ALONE
        acknowledged = status is ControlSignalStatus.ACKNOWLEDGED
        outcome = _Outcome.FAILED
        try:
            current = (await ctx.client.read_flow_run(run_id)).state
        except ObjectNotFound:
            current = None
        if current is not None and current.is_final() and not current.is_crashed():
            outcome = _Outcome.LEFT_ALONE
        else:
            try:
                state = await propose_state(
                    ctx.client,
                    AwaitingRetry(message=f"Handed back by worker {self.name!r}, which is stopping."),
                    flow_run_id=run_id,
                )
                if state.is_scheduled():
                    outcome = _Outcome.HANDED_BACK
            except (Abort, Pause):
                outcome = _Outcome.LEFT_ALONE
            except Exception:  # any API fault: the run is reported Crashed instead
                logger.exception("Could not hand flow run %s back to the pool", run_id)
        # An engine that never acknowledged must not run any more code: it would propose Crashed.
        await ctx.process_manager.kill(run_id, force=not acknowledged)
        # No await between the kill and this cancel, or the executor would see the exit and propose Crashed.
        scope.cancel()
        if outcome is _Outcome.HANDED_BACK:
            logger.info("Worker %r is stopping: handed flow run %s back to the pool.", self.name, run_id)
        return outcome

    async def _cancel_unfinished_task_runs(self, flow_run: FlowRun) -> None:
        """Mark Cancelled the task runs a handed-back attempt left Crashed, Running or Pending.

        The engine reports a task that the hand-back's SIGTERM interrupted as Crashed, and a task whose
        process was stopped before it said anything stays Running; neither is true of the run, which goes on
        in its next attempt with task runs of its own. Cancelled is what happened (stopped on purpose, not a
        fault, a final state: nothing waits on it). Only this attempt's task runs (`flow_run_run_count`) are
        touched, after its process has stopped; the task-run recorder keeps the newest state, so an engine
        event still on its way cannot turn one back into Crashed.
        """
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
        from prefect.states import Cancelled

        logger = self.get_flow_run_logger(flow_run)
        unfinished = {StateType.CRASHED, StateType.RUNNING, StateType.PENDING, StateType.SCHEDULED}
        message = f"Stopped when worker {self.name!r} handed its flow run back; the flow run's next attempt goes on."
        try:
            async with get_client() as client:
                attempt = (await client.read_flow_run(flow_run.id)).run_count
                task_runs = await client.read_task_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id]))
                )
                for task_run in task_runs:
                    if task_run.flow_run_run_count == attempt and task_run.state_type in unfinished:
                        await client.set_task_run_state(task_run.id, Cancelled(message=message), force=True)
        except Exception:  # the hand-back itself succeeded; a stale task-run state is only cosmetic
            logger.exception("Could not mark the unfinished task runs of flow run %s Cancelled", flow_run.id)

    def _record(self, attempt: _Attempt) -> None:
        if attempt.flow_run_id in self._report.failed:
            return  # already given up on (hand-back timeout)
        if attempt.outcome is _Outcome.HANDED_BACK:
            self._report.handed_back.append(attempt.flow_run_id)
        elif attempt.outcome is _Outcome.FAILED:
            self._report.failed.append(attempt.flow_run_id)
        else:
            self._report.finished.append(attempt.flow_run_id)

    # --- the worker ---------------------------------------------------------------------------------
    def in_flight(self) -> set[UUID]:
        """Runs this worker has claimed and not yet let go: being submitted or running."""
        return set(self._submitting_flow_run_ids) | set(self._attempts)

    async def serve(self, shutdown: ShutdownRequest, *, grace_s: float, printer: Printer = print) -> ShutdownReport:
        """Poll and run flow runs until `shutdown` stops it, then drain and hand back (see the module doc)."""
        async with self:
            if self._zygote is not None:
                ready = await self._zygote.start()
                printer(
                    f"Prefork launch: zygote {ready['pid']} imported Prefect and {len(ready['preloaded'])} "
                    f"flow module(s) in {ready['import_s']:.1f} s"
                )
            async with anyio.create_task_group() as services:
                polling = anyio.CancelScope()

                async def poll() -> None:
                    with polling:
                        await critical_service_loop(
                            workload=self.get_and_submit_flow_runs,
                            interval=PREFECT_WORKER_QUERY_SECONDS.value(),
                            jitter_range=0.3,
                            backoff=4,
                            printer=printer,
                        )
                        # The loop gave up after repeated failures (as `prefect worker start` would): stop.
                        shutdown.receive("polling failed")

                async def heartbeat() -> None:
                    await critical_service_loop(
                        workload=self._sync_and_initialize,
                        interval=self.heartbeat_interval_seconds,
                        jitter_range=0.3,
                        backoff=4,
                        printer=printer,
                    )

                services.start_soon(poll)
                services.start_soon(heartbeat)
                self._started_event = await self._emit_worker_started_event()
                printer(f"Worker {self.name!r} started on pool {self._work_pool_name!r}; grace period {grace_s:g} s")

                await shutdown.stop.wait()
                polling.cancel()
                await self._drain(shutdown, grace_s, printer)
                services.cancel_scope.cancel()
            if self._report.failed and self._runs_task_group is not None:
                # Runs that could not be handed back in time: teardown stops their processes.
                self._runs_task_group.cancel_scope.cancel()
        if self._zygote is not None:
            self._zygote.close()
        self._report.signals = list(shutdown.received)
        printer(f"Worker {self.name!r} stopped: {self._report.summary()}")
        return self._report

    async def _drain(self, shutdown: ShutdownRequest, grace_s: float, printer: Printer) -> None:
        self._draining = True
        reason = shutdown.received[0] if shutdown.received else "stop"
        printer(
            f"{reason}: claiming no new runs; {len(self.in_flight())} in flight may finish within {grace_s:g} s "
            "(signal again to hand them back now)"
        )
        with anyio.move_on_after(grace_s):
            while self.in_flight() and not shutdown.hurry.is_set():
                with anyio.move_on_after(_POLL_S):
                    await shutdown.hurry.wait()
        if not self.in_flight():
            return
        self._handing_back = True
        printer(f"handing back {len(self.in_flight())} run(s) to pool {self._work_pool_name!r}")
        with anyio.move_on_after(HAND_BACK_TIMEOUT_S):
            while self.in_flight():
                # A run still being submitted registers its attempt a little later and is asked then.
                for attempt in list(self._attempts.values()):
                    attempt.requested.set()
                await anyio.sleep(_POLL_S)
        left = self.in_flight()
        if left:
            printer(f"gave up handing back {len(left)} run(s) after {HAND_BACK_TIMEOUT_S:g} s")
            self._report.failed.extend(sorted(left - set(self._report.failed)))


def _is_engine_command(command: str | None) -> bool:
    """Whether a job's command is `<some python> -m prefect.engine` (what the prefork launch replaces)."""
    if not command:
        return True
    return command_from_string(command)[1:] == ["-m", "prefect.engine"]


class Launch(StrEnum):
    """How `vibe worker` starts a flow run's process."""

    PREFORK = "prefork"  # forked from a warm zygote that has imported Prefect and the flows (the default)
    ENGINE = "engine"  # a new `<interpreter> -m prefect.engine` per run


@dataclass(frozen=True)
class WorkerOptions:
    """How to run one worker: the pool, optional queues, name, run limit, grace period and launch."""

    pool: str
    queues: tuple[str, ...] = ()
    name: str | None = None
    limit: int | None = None
    grace_s: float = 30.0
    launch: Launch = Launch.PREFORK

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        pool: str | None = None,
        queues: tuple[str, ...] = (),
        name: str | None = None,
        limit: int | None = None,
        grace_s: float | None = None,
        launch: Launch | str | None = None,
    ) -> WorkerOptions:
        """Options with every unset value taken from `settings` (`VIBE_WORK_POOL`, `VIBE_WORKER_*`)."""
        return cls(
            pool=pool or settings.work_pool,
            queues=queues,
            name=name,
            limit=limit if limit is not None else settings.worker_limit,
            grace_s=grace_s if grace_s is not None else settings.worker_grace_s,
            launch=Launch(launch or settings.worker_launch),
        )


async def _check_pool(settings: Settings, pool: str) -> None:
    async with prefect_api(settings) as client:
        try:
            await client.read_work_pool(pool)
        except ObjectNotFound:
            raise ConfigError(
                f"the work pool {pool!r} does not exist at {api_url(settings)}: run `vibe setup` first"
            ) from None


async def aserve_worker(
    settings: Settings, options: WorkerOptions, *, printer: Printer = print, shutdown: ShutdownRequest | None = None
) -> ShutdownReport:
    """Run a draining process worker until SIGTERM/SIGINT (or `shutdown`), then drain and hand back.

    Raises:
        ConfigError: no Prefect API is configured, or the pool does not exist.
        OrchestrationError: the API cannot be reached.
    """
    await _check_pool(settings, options.pool)
    shutdown = shutdown or ShutdownRequest()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, shutdown.receive, sig.name)
    zygote = Zygote(deployed_flow_modules(), cwd=project_root()) if options.launch is Launch.PREFORK else None
    try:
        worker = DrainingProcessWorker(
            work_pool_name=options.pool,
            work_queues=list(options.queues) or None,
            name=options.name,
            limit=options.limit,
            # `vibe setup` owns the pool and its job template (heartbeats on): never create a bare one.
            create_pool_if_not_found=False,
            zygote=zygote,
            # Claim runs at most this far ahead of their start time: a forked run starts in well under a second,
            # and a run claimed early only meets its queue's rate limit early (and goes back to wait).
            prefetch_seconds=PREFORK_PREFETCH_S if zygote is not None else None,
        )
        return await worker.serve(shutdown, grace_s=options.grace_s, printer=printer)
    finally:
        if zygote is not None:
            zygote.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def serve_worker(settings: Settings, options: WorkerOptions, *, printer: Printer = print) -> ShutdownReport:
    """Synchronous `aserve_worker`: the entry point of `vibe worker start`."""
    return asyncio.run(aserve_worker(settings, options, printer=printer))
