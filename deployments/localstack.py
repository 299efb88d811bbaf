"""A throwaway Prefect server (PostgreSQL or SQLite) and process workers on this machine.

For the end-to-end tests, the throughput benchmark and trying the deployments out locally:

```python
with LocalPrefect(home=Path("/tmp/p")) as stack:        # a private database, a free port
    env = stack.client_env()                            # PREFECT_API_URL=... for subprocesses
    subprocess.run(["vibe", "setup"], env=env, check=True)
    worker = stack.start_worker("vibe", limit=4)
```

With `database="auto"` it uses PostgreSQL at `pg_dsn` when it answers (a private database, dropped on close)
and SQLite in `home` otherwise. Everything it starts runs in its own process group and is stopped on close.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

import httpx

from vibe.errors import ConfigError, OrchestrationError

Database = Literal["auto", "postgres", "sqlite"]
_DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _pg(dsn: str, statement: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def postgres_available(dsn: str = _DEFAULT_DSN) -> bool:
    """Whether a PostgreSQL server answers at `dsn`."""
    try:
        asyncio.run(_pg(dsn, "SELECT 1"))
    except (TimeoutError, OSError, ImportError):
        return False
    except Exception:  # noqa: BLE001 - asyncpg's auth and protocol errors all mean "not usable here"
        return False
    return True


class LocalPrefect:
    """A Prefect server on a free port with a private PREFECT_HOME and database; workers on demand.

    Args:
        home: a directory for PREFECT_HOME, the SQLite file and the logs of the processes.
        database: `postgres`, `sqlite` or `auto` (PostgreSQL when it answers).
        pg_dsn: the PostgreSQL server (trust or password in the DSN); a database is created and dropped there.
        server_env: extra environment for the server (e.g. `PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS`).
        env: extra environment for every client process (CLI, workers).
        startup_timeout_s: how long the server may take to answer its health check.
    """

    def __init__(
        self,
        home: Path,
        *,
        database: Database = "auto",
        pg_dsn: str = _DEFAULT_DSN,
        server_env: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
        startup_timeout_s: float = 120.0,
    ) -> None:
        self.home = home
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.ui_url = f"http://127.0.0.1:{self.port}"
        self._pg_dsn = pg_dsn
        self._database: Database = database
        self._server_env = dict(server_env or {})
        self._env = dict(env or {})
        self._startup_timeout_s = startup_timeout_s
        self._server: subprocess.Popen[bytes] | None = None
        self._workers: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []
        self._pg_database: str | None = None
        self.database_url = ""

    # --- lifecycle --------------------------------------------------------------------------------
    def __enter__(self) -> LocalPrefect:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start(self) -> None:
        """Create the database and start the server; returns once its API answers."""
        self.home.mkdir(parents=True, exist_ok=True)
        use_pg = self._database == "postgres" or (self._database == "auto" and postgres_available(self._pg_dsn))
        if use_pg:
            name = f"vibe_{uuid.uuid4().hex[:12]}"
            try:
                asyncio.run(_pg(self._pg_dsn, f'CREATE DATABASE "{name}"'))
            except Exception as exc:
                raise ConfigError(f"cannot create a PostgreSQL database at {self._pg_dsn}: {exc}") from exc
            self._pg_database = name
            base = self._pg_dsn.rsplit("/", 1)[0]
            self.database_url = f"{base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"
        else:
            self.database_url = f"sqlite+aiosqlite:///{self.home / 'prefect.db'}"
        env = {
            **self._base_env(),
            "PREFECT_API_DATABASE_CONNECTION_URL": self.database_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            # The UI asks the API at 127.0.0.1:4200 unless told where the server really is.
            "PREFECT_UI_API_URL": self.api_url,
            # A run waiting for a deployment slot is re-checked every 2 s instead of 30 (see the README).
            "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": "2",
            **self._server_env,
        }
        env.pop("PREFECT_API_URL", None)
        log = (self.home / "server.log").open("wb")
        self._logs.append(log)
        self._server = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + self._startup_timeout_s
        while time.monotonic() < deadline:
            if self._server.poll() is not None:
                raise OrchestrationError(
                    f"prefect server exited with {self._server.returncode}; see {self.home / 'server.log'}",
                    retryable=False,
                )
            try:
                if httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise OrchestrationError(f"prefect server did not answer within {self._startup_timeout_s:.0f} s")

    def close(self) -> None:
        """Stop the workers and the server, drop the private database."""
        for proc in [*self._workers, *([self._server] if self._server else [])]:
            stop_process_group(proc)
        self._workers.clear()
        self._server = None
        for log in self._logs:
            log.close()
        self._logs.clear()
        if self._pg_database:
            try:
                asyncio.run(_pg(self._pg_dsn, f'DROP DATABASE IF EXISTS "{self._pg_database}" WITH (FORCE)'))
            finally:
                self._pg_database = None

    # --- clients ----------------------------------------------------------------------------------
    def _base_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "PREFECT_HOME": str(self.home / "prefect-home"),
                "PREFECT_CLI_PROMPT": "false",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            }
        )
        env.update(self._env)
        return env

    def client_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The environment of a process that talks to this server (CLI, `prefect deploy`, a worker)."""
        env = {**self._base_env(), "PREFECT_API_URL": self.api_url, **(extra or {})}
        # Never let a client fall back to its own SQLite: the server's database is the server's.
        env.pop("PREFECT_API_DATABASE_CONNECTION_URL", None)
        return env

    def start_worker(
        self,
        pool: str,
        *,
        name: str | None = None,
        limit: int | None = None,
        cwd: Path | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start `prefect worker start --pool POOL` (a process worker) in its own process group."""
        worker_name = name or f"worker-{len(self._workers) + 1}"
        command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--name", worker_name]
        if limit is not None:
            command += ["--limit", str(limit)]
        return self._spawn_worker(command, worker_name, cwd=cwd, extra_env=extra_env)

    def start_vibe_worker(
        self,
        pool: str,
        *,
        name: str | None = None,
        limit: int | None = None,
        grace_s: float | None = None,
        queues: tuple[str, ...] = (),
        launch: str | None = None,
        cwd: Path | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start `vibe worker start --pool POOL` (stops cleanly on SIGTERM) in its own process group.

        `launch` is `--launch` (`prefork`, the default, or `engine`).

        Its output goes to `<home>/<name>.log` (`worker_log(name)`).
        """
        worker_name = name or f"worker-{len(self._workers) + 1}"
        command = [sys.executable, "-m", "cli", "worker", "start", "--pool", pool, "--name", worker_name]
        if limit is not None:
            command += ["--limit", str(limit)]
        if grace_s is not None:
            command += ["--grace-s", str(grace_s)]
        for queue in queues:
            command += ["--queue", queue]
        if launch is not None:
            command += ["--launch", launch]
        return self._spawn_worker(command, worker_name, cwd=cwd, extra_env=extra_env)

    def worker_log(self, name: str) -> Path:
        """The file a worker started here writes its output to."""
        return self.home / f"{name}.log"

    def _spawn_worker(
        self, command: list[str], worker_name: str, *, cwd: Path | None, extra_env: dict[str, str] | None
    ) -> subprocess.Popen[bytes]:
        log = self.worker_log(worker_name).open("wb")
        self._logs.append(log)
        proc = subprocess.Popen(
            command,
            env=self.client_env(extra_env),
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._workers.append(proc)
        return proc


def stop_process_group(proc: subprocess.Popen[bytes], *, grace_s: float = 10.0) -> None:
    """SIGTERM a process started with `start_new_session=True`, then SIGKILL its whole group."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
