"""The prefork launch: flow-run processes forked from a warm parent instead of started as new interpreters.

`Zygote` starts `deployments._zygote` once (a process that imports Prefect, the pull steps and the deployed
flows, then waits single-threaded) and asks it for one forked child per flow run; `PreforkStarter` is the
`ProcessStarter` that `vibe worker` gives Prefect's `FlowRunExecutor` instead of `EngineCommandStarter`.
The child builds the same environment `EngineCommandStarter` builds (`engine_env`) and runs
`prefect.engine` as `__main__`, so the run is what `python -m prefect.engine` would run, less the imports.

Each child is its own session (pgid = pid), so the worker stops it exactly like an isolated engine process
(`killpg`, SIGTERM then SIGKILL), knows its pid from the moment it exists, and learns its exit status from
the zygote, which reaps it (a child of the zygote cannot be waited for by the worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import anyio
import anyio.abc
from prefect.logging import get_logger
from prefect.runner._process_manager import ProcessHandle, create_isolated_termination_scope
from prefect.settings import get_current_settings
from prefect.utilities.processutils import sanitize_subprocess_env

from deployments._secrets import SecretCache
from deployments.steps import QUEUE_ENV
from vibe.errors import OrchestrationError

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun
    from prefect.runner._control_channel import ControlChannel

READY_TIMEOUT_S = 180.0

#: What a worker hands a forked run: the Secret block names it read, and the values of those that exist.
HandedSecrets = tuple[tuple[str, ...], dict[str, str]]


def engine_env(
    flow_run: FlowRun,
    job_env: Mapping[str, str | None],
    control_env: Mapping[str, str],
) -> dict[str, str]:
    """The environment `EngineCommandStarter.start` gives `python -m prefect.engine` (Prefect 3.9.1)."""
    env: dict[str, str | None] = {}
    env.update(os.environ)
    env.update(job_env)
    env.update(get_current_settings().to_environment_variables(exclude_unset=True))
    env.update(
        {
            "PREFECT__FLOW_RUN_ID": str(flow_run.id),
            "PREFECT__ENABLE_CANCELLATION_AND_CRASHED_HOOKS": "false",
            **control_env,
            "PREFECT__DEPLOYMENT_NAME": job_env.get("PREFECT__DEPLOYMENT_NAME"),
        }
    )
    return sanitize_subprocess_env(env)


class ForkedProcess:
    """A forked flow-run process as `ProcessHandle` sees it: a pid and, once it ended, a return code."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.ended: asyncio.Future[int] = asyncio.get_running_loop().create_future()


class Zygote:
    """The worker's side of the warm parent: start it, ask it to fork, learn when children end.

    Args:
        preload: modules the zygote imports before its first fork (the deployed flows).
        cwd: the zygote's working directory (its children start there unless told otherwise).
    """

    def __init__(self, preload: tuple[str, ...], *, cwd: Path | None = None) -> None:
        self.preload = preload
        self.cwd = cwd
        self.ready: dict[str, Any] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._requests = -1
        self._replies = -1
        self._buffer = b""
        self._next_id = 0
        self._forks: dict[int, asyncio.Future[int]] = {}
        self._children: dict[int, ForkedProcess] = {}
        self._ready: asyncio.Future[dict[str, Any]] | None = None
        self._lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        """The zygote's pid while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    async def start(self) -> dict[str, Any]:
        """Start the zygote (if it is not running) and wait until it has preloaded; returns its `ready` report.

        Must be called on the event loop's thread, which must be the main thread: the zygote's
        `PR_SET_PDEATHSIG` fires when the thread that started it ends.
        """
        async with self._lock:
            if self.pid is not None and self._ready is not None and self._ready.done():
                return self.ready
            self._spawn()
            assert self._ready is not None
            try:
                self.ready = await asyncio.wait_for(asyncio.shield(self._ready), READY_TIMEOUT_S)
            except (TimeoutError, EOFError) as exc:
                self.close()
                raise OrchestrationError(f"the prefork zygote did not start: {exc!r}", retryable=True) from exc
            return self.ready

    def _spawn(self) -> None:
        self.close()
        loop = asyncio.get_running_loop()
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "deployments._zygote", str(req_r), str(rep_w), str(os.getpid()),
                 *self.preload],
                pass_fds=(req_r, rep_w),
                stdin=subprocess.DEVNULL,
                cwd=self.cwd,
                start_new_session=True,  # Ctrl-C and group-wide signals are the worker's
            )  # fmt: skip
        finally:
            os.close(req_r)
            os.close(rep_w)
        self._requests, self._replies, self._buffer = req_w, rep_r, b""
        os.set_blocking(rep_r, False)
        self._ready = loop.create_future()
        loop.add_reader(rep_r, self._on_readable)

    def _on_readable(self) -> None:
        try:
            chunk = os.read(self._replies, 1 << 16)
        except BlockingIOError:
            return
        if not chunk:
            self._on_gone()
            return
        self._buffer += chunk
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            self._dispatch(json.loads(line))

    def _dispatch(self, message: dict[str, Any]) -> None:
        op = message["op"]
        if op == "ready" and self._ready is not None and not self._ready.done():
            self._ready.set_result(message)
        elif op == "forked":
            future = self._forks.pop(int(message["id"]), None)
            if future is not None and not future.done():
                future.set_result(int(message["pid"]))
        elif op == "error":
            future = self._forks.pop(int(message["id"]), None)
            if future is not None and not future.done():
                future.set_exception(OrchestrationError(f"the zygote refused to fork: {message['error']}"))
        elif op == "exit":
            child = self._children.pop(int(message["pid"]), None)
            if child is not None:
                child.returncode = int(message["code"])
                if not child.ended.done():
                    child.ended.set_result(child.returncode)

    def _on_gone(self) -> None:
        """The zygote exited: its children died with it (PR_SET_PDEATHSIG)."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(self._replies)
        gone = OrchestrationError("the prefork zygote exited", retryable=True)
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(EOFError("the zygote exited before it was ready"))
        for future in self._forks.values():
            if not future.done():
                future.set_exception(gone)
        self._forks.clear()
        for child in self._children.values():
            child.returncode = -9
            if not child.ended.done():
                child.ended.set_result(-9)
        self._children.clear()

    async def fork(
        self, env: Mapping[str, str], cwd: Path, *, quiet: bool = False, secrets: HandedSecrets | None = None
    ) -> ForkedProcess:
        """Fork one child that runs `prefect.engine` with `env` in `cwd`; returns once it exists.

        `secrets` (Secret block names read and their values) reach only the child's memory, for its
        `export_secrets` step (see `deployments._secrets`).
        """
        await self.start()
        self._next_id += 1
        request_id = self._next_id
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._forks[request_id] = future
        request: dict[str, Any] = {"op": "fork", "id": request_id, "env": dict(env), "cwd": str(cwd), "quiet": quiet}
        if secrets is not None:
            request["secrets"] = {"names": list(secrets[0]), "values": secrets[1]}
        data = json.dumps(request)
        try:
            os.write(self._requests, (data + "\n").encode())
        except OSError as exc:
            self._forks.pop(request_id, None)
            raise OrchestrationError(f"the prefork zygote is gone: {exc}", retryable=True) from exc
        pid = await future
        child = ForkedProcess(pid)
        self._children[pid] = child
        return child

    def close(self) -> None:
        """Stop the zygote: it stops its children (SIGTERM, then SIGKILL after 5 s) and exits."""
        if self._replies >= 0:
            with contextlib.suppress(ValueError, OSError, RuntimeError):
                asyncio.get_running_loop().remove_reader(self._replies)
            os.close(self._replies)
            self._replies = -1
        if self._requests >= 0:
            os.close(self._requests)  # EOF: the zygote stops
            self._requests = -1
        if self._proc is not None:
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None


class PreforkStarter:
    """A `ProcessStarter` (Prefect's runner protocol) that forks the flow-run process from the zygote."""

    def __init__(
        self,
        zygote: Zygote,
        *,
        cwd: Path,
        env: Mapping[str, str | None],
        stream_output: bool,
        control_channel: ControlChannel | None,
        secrets: SecretCache | None = None,
    ) -> None:
        self._zygote = zygote
        self._cwd = cwd
        self._env = env
        self._stream_output = stream_output
        self._control_channel = control_channel
        self._secrets = secrets

    async def _handed_secrets(self, flow_run: FlowRun) -> HandedSecrets | None:
        if self._secrets is None:
            return None
        try:
            return self._secrets.names, await self._secrets.get()
        except Exception as exc:  # noqa: BLE001 - the run then reads its Secret blocks itself
            logger = get_logger("vibe.prefork")
            logger.warning(
                "Could not read the Secret blocks for flow run %s (it reads them itself): %r", flow_run.id, exc
            )
            return None

    async def start(
        self, flow_run: FlowRun, task_status: anyio.abc.TaskStatus[ProcessHandle] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Fork the run's process, hand its `ProcessHandle` over, and return when it has ended."""
        control_env: dict[str, str] = {}
        registered = False
        if self._control_channel is not None:
            try:
                port, token = self._control_channel.register(flow_run.id)
                control_env = {"PREFECT__CONTROL_PORT": str(port), "PREFECT__CONTROL_TOKEN": token}
                registered = True
            except RuntimeError:
                pass  # no loopback listener: kill-only cancellation, as EngineCommandStarter falls back
        try:
            env = engine_env(flow_run, self._env, control_env)
            if flow_run.work_queue_name:
                env[QUEUE_ENV] = flow_run.work_queue_name  # admit_run need not read the run for it
            secrets = await self._handed_secrets(flow_run)
            child = await self._zygote.fork(env, self._cwd, quiet=not self._stream_output, secrets=secrets)
        except BaseException:
            if registered and self._control_channel is not None:
                self._control_channel.unregister(flow_run.id)
            raise
        # The child is its own session leader: the same termination scope as an isolated engine process.
        handle = ProcessHandle(cast(Any, child), termination_scope=create_isolated_termination_scope(child.pid))
        task_status.started(handle)
        await child.ended


def deployed_flow_modules(root: Path | None = None) -> tuple[str, ...]:
    """The modules the zygote preloads: the pull steps and every flow `prefect.yaml` deploys.

    Read from `prefect.yaml` as data (entrypoint `flows/index_codebase.py:index_codebase` -> module
    `flows.index_codebase`), so this floor names no flow; a missing or unreadable file preloads the steps only.
    """
    import yaml  # type: ignore[import-untyped]

    from deployments.steps import project_root

    root = root or project_root()
    modules = ["deployments.steps"]
    try:
        config = yaml.safe_load((root / "prefect.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return tuple(modules)
    for deployment in config.get("deployments") or []:
        path = str(deployment.get("entrypoint", "")).split(":", 1)[0]
        if path.endswith(".py") and (root / path).is_file():
            module = path[: -len(".py")].replace("/", ".")
            if module not in modules:
                modules.append(module)
    return tuple(modules)
