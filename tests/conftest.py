"""Shared fixtures: a real Redis with a private key prefix, a temporary VIBE_HOME, Prefect's test harness.

Redis is found in this order: `REDIS_URL`; a server on 127.0.0.1:6379; a `redis-server` started here on a
free port. If none works the session stops with a message that says how to install Redis. Tests only ever
write keys under their own random prefix and delete exactly those keys afterwards; nothing is flushed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

_LOCAL_REDIS = "redis://127.0.0.1:6379/0"


def pytest_configure(config: pytest.Config) -> None:
    # Keep Prefect's and vibe's state of the test session out of the user's home.
    home = Path(tempfile.mkdtemp(prefix="vibe-tests-"))
    os.environ.setdefault("PREFECT_HOME", str(home / "prefect"))
    os.environ["VIBE_HOME"] = str(home / "vibe")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Tests never talk to a real provider or GitHub, whatever the developer's shell holds.
    for name in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "XAI_API_KEY",
                 "GITHUB_TOKEN", "ANTHROPIC_BASE_URL", "OPENAI_BASE_URL", "PREFECT_API_URL"):
        os.environ.pop(name, None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _reachable(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
        ok = bool(client.ping())
        client.close()
        return ok
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL of a real Redis server for this test session."""
    configured = os.environ.get("REDIS_URL")
    if configured:
        if not _reachable(configured):
            pytest.exit(f"REDIS_URL={configured!r} is set but does not answer PING", returncode=3)
        yield configured
        return
    if _reachable(_LOCAL_REDIS):
        yield _LOCAL_REDIS
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.exit(
            "No Redis found: set REDIS_URL, run a server on 127.0.0.1:6379, or install redis-server "
            "(Debian/Ubuntu: `apt-get install redis-server`; macOS: `brew install redis`).",
            returncode=3,
        )
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not _reachable(url):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.exit(f"redis-server did not start on port {port}", returncode=3)
        time.sleep(0.05)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix private to one test; every key under it is deleted afterwards (and nothing else)."""
    prefix = f"vibe-test:{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def vibe_home(tmp_path: Path) -> Path:
    """A private VIBE_HOME for one test."""
    home = tmp_path / "vibe-home"
    home.mkdir()
    return home


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A temporary Prefect server (SQLite) for tests that run flows; started once per session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield
