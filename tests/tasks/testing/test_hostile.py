"""Hostile tests run through `run_test_suite`: what model-written code must not reach, and the no-bwrap policy.

Each hostile suite below tries what issue 11 found possible: read host secrets (`/etc/shadow`, a 0600 file under
/var/tmp, VIBE_HOME's cache), read the runner's environment through /proc, connect to a host unix socket, write
into the repository, its `.git` and outside. The runner runs in a subprocess started with a canary API key, as
`vibe` is, so that /proc/<pid>/environ holds it the way a real process's does.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import re
import shutil
import socketserver
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tasks.testing import SandboxUnavailableError, run_test_suite
from tests.tasks.testing.conftest import MakeRepo, needs_bwrap

PROJECT_ROOT = Path(__file__).resolve().parents[3]
# The runner in a process of its own, started with the caller's environment (the canary API key included).
RUNNER = """
import json, sys
from pathlib import Path
from tasks.testing import SandboxUnavailableError, run_test_suite
try:
    report = run_test_suite(Path(sys.argv[1]), timeout_s=120, rerun_failures=False, sandbox=sys.argv[2])
except SandboxUnavailableError as exc:
    print(json.dumps({"refused": str(exc)}))
else:
    print(json.dumps({"report": report.model_dump(mode="json"), "digest": report.failure_digest(100_000)}))
"""


@dataclass
class Host:
    """What a hostile test is after: canaries, a unix socket, marker paths; and what reached them."""

    outside: Path
    var_canary: Path
    vibe_canary: Path
    api_key: str
    socket_path: Path
    abstract_name: str
    markers: list[Path]
    connections: list[str] = field(default_factory=list)

    def secrets(self) -> list[str]:
        shadow = [line for line in _read_host("/etc/shadow").splitlines() if len(line) > 8]
        return [self.var_canary.read_text(), self.vibe_canary.read_text(), self.api_key, *shadow]


def _read_host(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


class _Recorder(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.server.connections.append("connection")  # type: ignore[attr-defined]


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> Iterator[Host]:
    """Canaries and a listening unix socket outside /tmp (the old sandbox showed all of / read-only)."""
    token = uuid.uuid4().hex
    outside = Path("/var/tmp") / f"vibe-hostile-{token}"
    outside.mkdir(mode=0o700)
    var_canary = outside / "secret.txt"
    var_canary.write_text(f"var-canary-{token}")
    var_canary.chmod(0o600)
    fake_home = outside / "home"
    vibe_canary = fake_home / ".vibe" / "llm-cache.txt"
    vibe_canary.parent.mkdir(parents=True)
    vibe_canary.write_text(f"vibe-home-canary-{token}")
    vibe_canary.chmod(0o600)
    monkeypatch.setenv("HOME", str(fake_home))
    monkeypatch.setenv("VIBE_HOME", str(fake_home / ".vibe"))
    api_key = f"sk-ant-canary-{token}"
    monkeypatch.setenv("ANTHROPIC_API_KEY", api_key)
    monkeypatch.setenv("OPENAI_API_KEY", api_key)
    monkeypatch.setenv("REDIS_URL", f"unix://{outside / 'redis.sock'}")
    real_home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    markers = [outside / "marker", Path("/var/tmp") / f"vibe-marker-{token}", real_home / f".vibe-marker-{token}"]

    socket_path = outside / "redis.sock"
    connections: list[str] = []
    file_server = socketserver.ThreadingUnixStreamServer(str(socket_path), _Recorder)
    abstract_name = f"vibe-hostile-{token}"
    abstract_server = socketserver.ThreadingUnixStreamServer("\0" + abstract_name, _Recorder)
    servers = (file_server, abstract_server)
    for server in servers:
        server.connections = connections  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield Host(outside, var_canary, vibe_canary, api_key, socket_path, abstract_name, markers, connections)
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
        for marker in markers:
            marker.unlink(missing_ok=True)
        shutil.rmtree(outside, ignore_errors=True)


def hostile_suite(host: Host, repo_path_hint: str) -> dict[str, str]:
    """Test files that try every escape and fail with whatever they got, so that it would reach the report."""
    targets = [
        "pwned.txt", ".git/hooks/post-commit", ".git/config", ".github/workflows/ci.yml",
        f"{repo_path_hint}/pwned-abs.txt", f"{repo_path_hint}/.git/hooks/post-commit",
        f"{repo_path_hint}/.git/config", *map(str, host.markers),
    ]  # fmt: skip
    return {
        "test_hostile.py": f"""
            import glob
            import os
            import socket
            from pathlib import Path


            def read(path):
                try:
                    return Path(path).read_text(errors="replace")
                except OSError as exc:
                    return f"<{{type(exc).__name__}}>"


            def test_reads_host_files():
                paths = ["/etc/shadow", {str(host.var_canary)!r}, {str(host.vibe_canary)!r}]
                found = {{path: read(path) for path in paths}}
                found["listing"] = str(sorted(glob.glob({str(host.outside)!r} + "/**", recursive=True)))
                print(found)
                raise AssertionError(repr(found))


            def test_reads_the_runners_environment():
                found = [read(path).replace("\\0", " ") for path in glob.glob("/proc/*/environ")]
                found.append(read(f"/proc/{{os.getppid()}}/environ").replace("\\0", " "))
                found.append(repr(dict(os.environ)))
                print(found)
                raise AssertionError(repr(found))


            def test_connects_to_host_sockets():
                results = []
                for address in ({str(host.socket_path)!r}, "\\0" + {host.abstract_name!r}):
                    client = socket.socket(socket.AF_UNIX)
                    client.settimeout(3)
                    try:
                        client.connect(address)
                        client.sendall(b"SET pwned 1\\r\\n")
                        results.append("connected")
                    except OSError as exc:
                        results.append(repr(exc))
                    finally:
                        client.close()
                raise AssertionError(repr(results))


            def test_writes_everywhere():
                # The workspace's `.git` file or directory rewritten, hooks and workflows planted, markers outside.
                results = {{}}
                for target in {targets!r}:
                    path = Path(target)
                    try:
                        path.parent.mkdir(parents=True, exist_ok=True)
                        path.write_text("pwned")
                        results[target] = "written"
                    except OSError as exc:
                        results[target] = repr(exc)
                raise AssertionError(repr(results))


            def test_where_am_i():
                raise AssertionError(f"cwd={{os.getcwd()}} file={{__file__}}")
        """,
    }


def tree_digest(root: Path) -> str:
    """A digest of every path, mode and content under `root` (`.git` included)."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(f"{path.relative_to(root)}\0{path.lstat().st_mode}\0".encode())
        if path.is_file() and not path.is_symlink():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def run_runner(repo: Path, *, sandbox: str = "required", path: str | None = None) -> tuple[dict[str, object], str]:
    """Run `run_test_suite(repo)` in a new process; its JSON answer and everything it printed (logs too)."""
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = path
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, str(repo), sandbox],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stdout + proc.stderr


@needs_bwrap
def test_hostile_tests_reach_no_secret_socket_or_file_of_the_host(make_repo: MakeRepo, host: Host) -> None:
    repo = make_repo({"README.md": "# target\n"})
    for name, text in hostile_suite(host, str(repo)).items():
        (repo / name).write_text(textwrap.dedent(text).lstrip("\n"))
    subprocess.run(["git", "add", "."], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "hostile"], cwd=repo, check=True)
    before = tree_digest(repo)

    # Run directly on the repository (not even a worktree): the copy must take every write.
    data, printed = run_runner(repo)

    assert "refused" not in data, data
    report = data["report"]
    assert isinstance(report, dict)
    outcomes = {t["id"]: t["outcome"] for t in report["tests"]}
    assert outcomes == {
        "test_hostile.py::test_reads_host_files": "failed",
        "test_hostile.py::test_reads_the_runners_environment": "failed",
        "test_hostile.py::test_connects_to_host_sockets": "failed",
        "test_hostile.py::test_writes_everywhere": "failed",
        "test_hostile.py::test_where_am_i": "failed",
    }, report["summary"]
    assert str(report["isolation"]).startswith("bwrap(no-net")
    # (a), (d): no canary anywhere the model or the logs would see it.
    leaked = [secret for secret in host.secrets() if secret in printed]
    assert leaked == []
    # (b): neither the socket file nor the abstract socket saw a connection.
    assert host.connections == []
    # (c): the repository, its `.git` included, is byte for byte as it was; nothing was written outside.
    assert tree_digest(repo) == before
    status = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=repo, capture_output=True, text=True)
    assert status.stdout == ""
    assert [m for m in host.markers if m.exists()] == []
    # The report shows the repository's path, not the run's copy.
    by_id = {t["id"]: t for t in report["tests"]}
    where = by_id["test_hostile.py::test_where_am_i"]["message"]
    assert f"cwd={repo}" in where
    assert f"file={repo / 'test_hostile.py'}" in where
    # (The run's private HOME and TMPDIR may show; the copy of the tree never does.)
    assert re.search(r"vibe-testrun-[^/'\" ]+/work/", json.dumps(report)) is None


def test_without_bubblewrap_untrusted_code_is_refused_and_nothing_runs(
    make_repo: MakeRepo, host: Host, tmp_path: Path
) -> None:
    marker = host.markers[1]
    repo = make_repo(
        {
            "test_marker.py": f"""
                import os
                from pathlib import Path


                def test_runs():
                    # Without bubblewrap the runner's environment (its API keys) would be one read away.
                    Path({str(marker)!r}).write_text("ran")
                    raise AssertionError(Path(f"/proc/{{os.getppid()}}/environ").read_text(errors="replace"))
            """,
        }
    )
    empty = tmp_path / "no-bwrap-here"
    empty.mkdir()
    data, printed = run_runner(repo, path=str(empty))
    refused = str(data.get("refused"))
    assert "apt-get install bubblewrap" in refused
    assert "VIBE_SANDBOX=unsafe" in refused
    assert "bwrap is not installed" in refused
    assert not marker.exists()
    assert host.api_key not in printed
    # Disabling bubblewrap for untrusted code under the required policy is refused the same way.
    with pytest.raises(SandboxUnavailableError, match="VIBE_SANDBOX=unsafe"):
        run_test_suite(repo, timeout_s=60, use_bwrap=False)
    assert not marker.exists()


def test_the_unsafe_policy_runs_without_bubblewrap_and_says_so(
    make_repo: MakeRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    repo = make_repo({"test_ok.py": "def test_ok():\n    pass\n"})
    empty = tmp_path / "no-bwrap-here"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    for _ in range(2):
        caplog.clear()
        with caplog.at_level("WARNING", logger="tasks.testing"):
            report = run_test_suite(repo, timeout_s=60, sandbox="unsafe")
        assert report.ok, report.failure_digest()
        assert not report.isolation.startswith("bwrap(")
        assert "UNSAFE: untrusted code without network or file system isolation (VIBE_SANDBOX=unsafe)" in (
            report.isolation
        )
        # A warning on every run, not once per process.
        assert any("UNSAFE" in r.getMessage() for r in caplog.records)


@needs_bwrap
def test_setup_steps_get_the_same_file_system_plan(make_repo: MakeRepo, host: Host, tmp_path: Path) -> None:
    setup = (
        "python -c \"import os, sys; assert os.environ['SETUPTOOLS_SCM_PRETEND_VERSION']; "
        f'sys.exit(0 if not os.path.exists({str(host.var_canary)!r}) else 9)" '
        f"&& echo pwned > setup-wrote.txt && (echo pwned > {host.markers[0]} || true)"
    )
    repo = make_repo({"requirements.txt": "\n", "test_ok.py": "def test_ok():\n    pass\n"})
    before = tree_digest(repo)
    report = run_test_suite(repo, setup=setup, env_cache_dir=tmp_path / "envs", timeout_s=120)
    assert report.ok, report.failure_digest() + report.output
    assert tree_digest(repo) == before
    assert not host.markers[0].exists()


@needs_bwrap
def test_toolchain_homes_are_bound_only_in_part(
    make_repo: MakeRepo, host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    cargo_home = host.outside / "cargo"
    (cargo_home / "bin").mkdir(parents=True)
    tool = cargo_home / "bin" / "toolchain-probe"
    tool.write_text("#!/bin/sh\necho toolchain-ok\n")
    tool.chmod(0o755)
    token = f"cargo-token-{uuid.uuid4().hex}"
    (cargo_home / "credentials.toml").write_text(f'[registry]\ntoken = "{token}"\n')
    monkeypatch.setenv("CARGO_HOME", str(cargo_home))
    repo = make_repo(
        {
            "test_toolchain.py": f"""
                import subprocess
                from pathlib import Path


                def test_the_toolchain_runs():
                    out = subprocess.run([{str(tool)!r}], capture_output=True, text=True, check=True).stdout
                    assert out == "toolchain-ok\\n"


                def test_its_credentials_are_not_there():
                    assert not Path({str(cargo_home / "credentials.toml")!r}).exists()
            """,
        }
    )
    report = run_test_suite(repo, timeout_s=60)
    assert report.ok, report.failure_digest()
    assert report.passed == 2
    assert token not in report.model_dump_json()


def test_runner_options_carry_the_sandbox_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.testing import runner_options
    from vibe.settings import Settings

    monkeypatch.setenv("VIBE_SANDBOX", "unsafe")
    assert runner_options(Settings.load())["sandbox"] == "unsafe"
    monkeypatch.delenv("VIBE_SANDBOX")
    assert runner_options(Settings.load())["sandbox"] == "required"
