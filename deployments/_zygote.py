"""The warm parent of the prefork launch: imports Prefect and the flows once, then forks one child per flow run.

Run by `deployments.prefork.Zygote` as `python -m deployments._zygote REQUESTS_FD REPLIES_FD WORKER_PID
[MODULE ...]`; never by hand. The protocol is newline-delimited JSON on two pipes:

- worker -> zygote: `{"op": "fork", "id": N, "env": {...}, "cwd": "...", "quiet": false}`;
- zygote -> worker: `{"op": "ready", "pid": P, "preloaded": [...], "import_s": S}` once, then per request
  `{"op": "forked", "id": N, "pid": P}` or `{"op": "error", "id": N, "error": "..."}`, and for every child
  that ends `{"op": "exit", "pid": P, "code": C}` (C < 0: killed by signal -C, as `subprocess` reports it).

Fork safety (checked before every fork, a failed check refuses the fork instead of forking a broken child):
the zygote is single-threaded (`threading.active_count() == 1`), runs no event loop, and holds no socket
(every open descriptor is checked with `fstat`): it imports modules and never calls the API, so it has no
Prefect client, no httpx pool, no services. Its stdio buffers are flushed right before `fork()`, so no
child repeats the zygote's output.

After `fork()` the child (`_become_child`): closes the protocol pipes, starts its own session (so a signal
to the worker's process group does not reach it and the worker stops it with `killpg`), asks the kernel to
SIGKILL it if the zygote dies (`PR_SET_PDEATHSIG`), restores default signal handling, takes the job's
environment and working directory, re-seeds `random`, then runs `prefect/engine.py` as `__main__` exactly as
`python -m prefect.engine` does, and leaves through the normal interpreter exit (atexit handlers run).

Settings and logging: a child must run on the settings its job's environment gives, not the zygote's. The
zygote builds Prefect's global settings context and logging configuration from a job's `PREFECT_*` variables
and working directory before forking it (`_prepare_settings`: settings are read from those variables and from
`.env`, `prefect.toml` and `pyproject.toml` in the working directory), and again only when a job brings
different ones: jobs of one worker share them (each run's new, empty temporary directory reads the same), so
the ~70 ms this costs is paid once per worker instead of in every run. Variables of one run
(`PREFECT__FLOW_RUN_ID`, the control channel) are not settings and do not count.

When the worker goes away (its end of the requests pipe closes, or the kernel sends the zygote SIGTERM
because the worker died: `PR_SET_PDEATHSIG` again), the zygote SIGTERMs every child's process group (the
engine then reports its run Crashed), SIGKILLs what is left after `STOP_GRACE_S`, and exits: a killed
worker leaves no flow-run process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import importlib
import json
import os
import random
import runpy
import select
import signal
import stat
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

PR_SET_PDEATHSIG = 1
STOP_GRACE_S = 5.0
_TICK_S = 0.05


class _Stop(Exception):
    """The worker is gone: stop the children and exit."""


@dataclass(frozen=True)
class _Job:
    env: dict[str, str]
    cwd: str
    quiet: bool
    # Secret block names the worker read and their values: kept in the child's memory only (never its
    # environment) for its `export_secrets` step; the zygote drops them with the request once it has forked.
    secret_names: tuple[str, ...] | None = None
    secret_values: dict[str, str] | None = None


def _set_parent_death_signal(sig: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def fork_safety_problems(allowed_fds: set[int]) -> list[str]:
    """What would make a fork unsafe right now: threads, a running event loop, open sockets."""
    problems: list[str] = []
    if threading.active_count() != 1:
        problems.append(f"{threading.active_count()} threads: {[t.name for t in threading.enumerate()]}")
    if asyncio._get_running_loop() is not None:
        problems.append("an event loop is running")
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd in allowed_fds:
            continue
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            continue  # the descriptor of the listdir itself
        if stat.S_ISSOCK(mode):
            problems.append(f"socket open on fd {fd}")
    return problems


def _send(fd: int, message: dict[str, Any]) -> None:
    data = (json.dumps(message) + "\n").encode()
    while data:
        data = data[os.write(fd, data) :]


def load_prefect_settings() -> None:
    """Read Prefect's global settings context and logging configuration again, from this process's environment
    and working directory."""
    import prefect.context
    import prefect.logging.configuration

    prefect.context.refresh_global_settings_context()
    prefect.logging.configuration.PROCESS_LOGGING_CONFIG = {}
    prefect.logging.configuration.setup_logging(incremental=False)


def _settings_env(env: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """The variables of `env` Prefect's settings read: `PREFECT_*` (without a run's own `PREFECT__*`) and `HOME`
    (where the default profile and logging configuration live)."""
    return tuple(sorted((k, v) for k, v in env.items()
                        if k == "HOME" or (k.startswith("PREFECT_") and not k.startswith("PREFECT__"))))  # fmt: skip


# The files in a process's working directory that Prefect's settings read.
_SETTINGS_FILES = (".env", "prefect.toml", "pyproject.toml")


def _settings_files(cwd: str) -> tuple[str, ...]:
    """What Prefect's settings read from `cwd`: its parent (the worker gives each run a new, empty temporary
    directory, so the path itself differs every run) and the content of the settings files there."""
    found: list[str] = [os.path.dirname(os.path.abspath(cwd))]
    for name in _SETTINGS_FILES:
        try:
            with open(os.path.join(cwd, name), encoding="utf-8", errors="replace") as file:
                found.append(f"{name}\n{file.read()}")
        except OSError:
            found.append(f"{name} absent")
    return tuple(found)


def _exit_code(status: int) -> int:
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


class _Zygote:
    def __init__(self, requests: int, replies: int, worker_pid: int) -> None:
        self.requests = requests
        self.replies = replies
        self.worker_pid = worker_pid
        self.children: set[int] = set()
        self._buffer = b""
        self._settings_for: tuple[tuple[str, ...], tuple[tuple[str, str], ...]] | None = None

    def preload(self, modules: list[str]) -> None:
        started = time.perf_counter()
        import prefect.deployments.steps.core
        import prefect.engine
        import prefect.flow_engine  # noqa: F401

        loaded: list[str] = []
        for module in modules:
            try:
                importlib.import_module(module)
                loaded.append(module)
            except Exception as exc:  # noqa: BLE001 - a module that fails here fails again, loudly, in its run
                print(f"vibe zygote: could not preload {module}: {exc!r}", file=sys.stderr)
        # Everything preloaded goes to the GC's permanent generation: a child's collections then never walk
        # (and so never copy-on-write) the zygote's pages of objects (gunicorn/Instagram's `gc.freeze`).
        gc.collect()
        gc.freeze()
        problems = fork_safety_problems({0, 1, 2, self.requests, self.replies})
        if problems:
            raise RuntimeError(f"preloading left the zygote unsafe to fork: {'; '.join(problems)}")
        _send(self.replies, {"op": "ready", "pid": os.getpid(), "preloaded": loaded,
                             "import_s": round(time.perf_counter() - started, 3)})  # fmt: skip

    def serve(self) -> _Job | None:
        """Fork on request until the worker goes; returns the job in a child, None in the zygote at its end."""
        try:
            while True:
                self._reap()
                readable, _, _ = select.select([self.requests], [], [], _TICK_S)
                if not readable:
                    continue
                chunk = os.read(self.requests, 1 << 16)
                if not chunk:
                    raise _Stop
                self._buffer += chunk
                while b"\n" in self._buffer:
                    line, self._buffer = self._buffer.split(b"\n", 1)
                    job = self._handle(json.loads(line))
                    if job is not None:
                        return job  # in the child
        except _Stop:
            self._stop_children()
            return None

    def _handle(self, request: dict[str, Any]) -> _Job | None:
        handed = request.pop("secrets", None)
        job = _Job(
            env=dict(request["env"]),
            cwd=str(request["cwd"]),
            quiet=bool(request.get("quiet")),
            secret_names=tuple(handed["names"]) if handed else None,
            secret_values=dict(handed["values"]) if handed else None,
        )
        del handed
        try:
            self._prepare_settings(job)
        except Exception as exc:  # noqa: BLE001 - a job whose settings are broken is refused, the zygote serves on
            _send(self.replies, {"op": "error", "id": request["id"], "error": f"the job's settings: {exc!r}"})
            return None
        problems = fork_safety_problems({0, 1, 2, self.requests, self.replies})
        if problems:
            _send(self.replies, {"op": "error", "id": request["id"], "error": "; ".join(problems)})
            return None
        sys.stdout.flush()
        sys.stderr.flush()
        # SIGTERM stays blocked across the fork: the child must not run the zygote's handler.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        try:
            pid = os.fork()
        except OSError as exc:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
            _send(self.replies, {"op": "error", "id": request["id"], "error": f"fork failed: {exc}"})
            return None
        if pid == 0:
            _become_child(self, job)
            return job
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        self.children.add(pid)
        _send(self.replies, {"op": "forked", "id": request["id"], "pid": pid})
        return None

    def _prepare_settings(self, job: _Job) -> None:
        """Make Prefect's settings and logging those of `job` (its `PREFECT_*` variables in its directory), unless
        they already are: the child inherits them through the fork."""
        wanted = (_settings_files(job.cwd), _settings_env(job.env))
        if wanted == self._settings_for:
            return
        saved, cwd = dict(os.environ), os.getcwd()
        try:
            os.environ.clear()
            kept = {k: v for k, v in saved.items() if k != "HOME" and not k.startswith("PREFECT_")}
            os.environ.update({**kept, **dict(wanted[1])})
            os.chdir(job.cwd)
            load_prefect_settings()
        finally:
            os.environ.clear()
            os.environ.update(saved)
            os.chdir(cwd)
        self._settings_for = wanted

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            self.children.discard(pid)
            try:
                _send(self.replies, {"op": "exit", "pid": pid, "code": _exit_code(status)})
            except BrokenPipeError:
                raise _Stop from None

    def _stop_children(self) -> None:
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while self.children and time.monotonic() < deadline:
            with contextlib.suppress(_Stop):
                self._reap()
            time.sleep(_TICK_S)
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def _become_child(zygote: _Zygote, job: _Job) -> None:
    """Turn the fresh fork into what `python -m prefect.engine` would be with `job`'s environment."""
    os.close(zygote.requests)
    os.close(zygote.replies)
    zygote_pid = os.getppid()
    os.setsid()
    _set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != zygote_pid:  # the zygote died before the death signal was armed
        os._exit(1)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    if job.quiet:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)
    os.environ.clear()
    os.environ.update(job.env)
    os.chdir(job.cwd)
    if sys.path and sys.path[0] in ("", os.path.realpath(os.getcwd())):
        sys.path[0] = job.cwd
    random.seed()  # not the zygote's sequence: every child would draw the same numbers
    if job.secret_names is not None and job.secret_values is not None:
        from deployments._secrets import hand_over

        hand_over(job.secret_names, job.secret_values)
    # Prefect's settings and logging are already the job's: the zygote made them so before forking.


def _run_engine() -> None:
    import prefect.engine

    # `python -m prefect.engine` runs this file as `__main__`; `run_path` does the same on the imported modules
    # (`run_module` would warn that `prefect.engine` is already imported, which the zygote did on purpose).
    path = prefect.engine.__file__
    assert path is not None
    sys.argv = [path]
    runpy.run_path(path, run_name="__main__")


def main(argv: list[str]) -> int:
    """The zygote's entry point; in each forked child it runs the flow run and returns its exit code."""
    requests, replies, worker_pid = int(argv[0]), int(argv[1]), int(argv[2])
    # The worker died (SIGKILL included): the kernel tells us with SIGTERM.
    _set_parent_death_signal(signal.SIGTERM)

    def _stop(signum: int, frame: object) -> None:
        raise _Stop

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the worker's to handle
    zygote = _Zygote(requests, replies, worker_pid)
    try:
        if os.getppid() != worker_pid:
            return 1
        zygote.preload(argv[3:])
        job = zygote.serve()
    except _Stop:
        zygote._stop_children()
        return 0
    if job is None:
        return 0
    _run_engine()  # SystemExit (the engine's exit(0)/exit(1)) ends the child like `python -m` would
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
