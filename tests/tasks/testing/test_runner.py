"""run_test_suite against real repositories in tmp_path, run in the real sandbox."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks.testing import TestReport, run_test_suite
from tasks.testing.runner import environment_key
from tasks.testing.sandbox import process_limit_available
from tasks.workspace import open_workspace
from tests.tasks.testing.conftest import MakeRepo, needs_bwrap, processes_with, toolchain_problem
from vibe.errors import InputError

MIXED_SUITE = {
    "pyproject.toml": """
        [project]
        name = "mixed"
        version = "0"
    """,
    "tests/test_mixed.py": """
        from pathlib import Path

        import pytest


        def test_passes():
            assert 1 + 1 == 2


        def test_fails():
            assert [1, 2] == [1, 3], "lists differ"


        @pytest.fixture
        def broken():
            raise RuntimeError("fixture exploded")


        def test_errors(broken):
            pass


        @pytest.mark.skip(reason="not on this platform")
        def test_skipped():
            pass


        def test_flaky():
            # Fails the first time only: the marker lives in the workspace, which the re-run shares.
            marker = Path("flaky.marker")
            if not marker.exists():
                marker.write_text("seen")
                raise AssertionError("first attempt fails")
    """,
}


def run_in_workspace(repo: Path, **kwargs: object) -> TestReport:
    with open_workspace(repo) as workspace:
        report = run_test_suite(workspace.path, **kwargs)  # type: ignore[arg-type]
        leftovers = [p for p in workspace.path.rglob("*") if p.name in ("__pycache__", ".pytest_cache", "junit.xml")]
        assert leftovers == [], f"the run left files in the workspace: {leftovers}"
    return report


def test_mixed_suite_reports_each_outcome_and_flaky_tests(make_repo: MakeRepo) -> None:
    repo = make_repo(MIXED_SUITE)
    report = run_in_workspace(repo, timeout_s=120)
    outcomes = {t.id: t.outcome for t in report.tests}
    assert outcomes == {
        "tests/test_mixed.py::test_passes": "passed",
        "tests/test_mixed.py::test_fails": "failed",
        "tests/test_mixed.py::test_errors": "error",
        "tests/test_mixed.py::test_skipped": "skipped",
        "tests/test_mixed.py::test_flaky": "passed",
    }
    assert (report.passed, report.failed, report.errors, report.skipped, report.flaky) == (1, 1, 1, 1, 1)
    assert report.exit_code == 1
    assert not report.timed_out
    assert not report.ok
    by_id = {t.id: t for t in report.tests}
    assert "lists differ" in by_id["tests/test_mixed.py::test_fails"].message
    assert "fixture exploded" in by_id["tests/test_mixed.py::test_errors"].message
    assert "not on this platform" in by_id["tests/test_mixed.py::test_skipped"].message
    assert by_id["tests/test_mixed.py::test_flaky"].flaky
    assert "first attempt fails" in by_id["tests/test_mixed.py::test_flaky"].message
    digest = report.failure_digest(2000)
    assert "FAILED tests/test_mixed.py::test_fails" in digest
    assert "ERROR tests/test_mixed.py::test_errors" in digest
    assert "test_flaky" not in digest
    # The user's repository saw nothing of it.
    status = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=repo, capture_output=True, text=True)
    assert status.stdout == ""


def test_without_reruns_a_flaky_test_counts_as_failed(make_repo: MakeRepo) -> None:
    repo = make_repo(MIXED_SUITE)
    report = run_in_workspace(repo, timeout_s=120, rerun_failures=False)
    assert (report.failed, report.flaky) == (2, 0)


def test_passing_suite_is_ok_and_cannot_see_secrets(make_repo: MakeRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {
        "OPENAI_API_KEY": "sk-test-not-a-real-key",
        "GITHUB_TOKEN": "ghp_not_a_real_token",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "PREFECT_API_URL": "http://127.0.0.1:1/api",
        "AWS_SECRET_ACCESS_KEY": "not-a-real-secret",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    repo = make_repo(
        {
            "test_env.py": f"""
                import os
                import subprocess

                SECRETS = {sorted(secrets)!r}


                def test_no_secret_is_visible():
                    leaked = [name for name in SECRETS if name in os.environ]
                    assert leaked == []
                    assert not any("not-a-real" in value or "sk-test" in value for value in os.environ.values())


                def test_home_is_private():
                    assert os.environ["HOME"] != {str(Path.home())!r}
                    assert os.environ["PYTHONDONTWRITEBYTECODE"] == "1"


                def test_no_git_metadata_is_in_reach():
                    # The tests run on a copy without `.git`: nothing they write there is ever seen by git.
                    assert not os.path.exists(".git")
                    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
                    assert head.returncode != 0
            """,
        }
    )
    report = run_in_workspace(repo, timeout_s=120)
    assert report.ok, report.failure_digest()
    assert report.passed == 3
    assert set(report.to_json_dict()) == {
        "passed", "failed", "errors", "skipped", "flaky", "timed_out", "exit_code", "duration_s", "tests",
    }  # fmt: skip
    assert set(report.to_json_dict()["tests"][0]) == {"id", "outcome", "duration_s", "message"}


def test_a_hanging_test_is_killed_with_everything_it_started(make_repo: MakeRepo) -> None:
    token = f"{uuid.uuid4().int % 10**6}.{os.getpid()}"
    repo = make_repo(
        {
            "test_hang.py": f"""
                import subprocess
                import time


                def test_hangs():
                    # A child in its own session escapes the process group; the sandbox must still end it.
                    subprocess.Popen(["sleep", "{token}"], start_new_session=True)
                    time.sleep(3600)
            """,
        }
    )
    report = run_in_workspace(repo, timeout_s=15)
    assert report.timed_out
    assert report.exit_code is None
    assert not report.ok
    assert report.summary.startswith("timed out after 15 s while running test_hang.py::test_hangs")
    assert [(t.id, t.outcome) for t in report.tests] == [("test_hang.py::test_hangs", "error")]
    assert "ERROR test_hang.py::test_hangs" in report.failure_digest()
    assert processes_with(token) == []


@pytest.mark.skipif(not process_limit_available(), reason="no process limit binds here (root without pids cgroup)")
def test_a_fork_bomb_hits_the_process_limit_and_ends_cleanly(make_repo: MakeRepo) -> None:
    token = f"{uuid.uuid4().int % 10**6}.{os.getpid() + 1}"
    repo = make_repo(
        {
            "test_bomb.py": f"""
                import os


                def test_forks_without_end():
                    while True:
                        if os.fork() == 0:
                            os.execvp("sleep", ["sleep", "{token}"])
            """,
        }
    )
    # Small limits: the bomb must stop at a few dozen processes, far from hurting the machine.
    report = run_in_workspace(repo, timeout_s=60, max_processes=40, rerun_failures=False)
    assert not report.timed_out
    assert report.failed == 1
    assert "Resource temporarily unavailable" in report.tests[0].message
    assert processes_with(token) == []


def test_a_memory_hog_gets_a_memory_error(make_repo: MakeRepo) -> None:
    repo = make_repo(
        {
            "test_hog.py": """
                def test_eats_memory():
                    hoard = []
                    while True:
                        hoard.append(bytearray(64 * 1024 * 1024))
            """,
        }
    )
    report = run_in_workspace(repo, timeout_s=60, memory_mb=1024, rerun_failures=False)
    assert report.failed == 1
    assert "MemoryError" in report.tests[0].message
    assert not report.timed_out


@pytest.fixture
def loopback_server() -> Iterator[tuple[int, list[str]]]:
    """A TCP server on 127.0.0.1 recording every connection it accepts."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    seen: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            seen.append("connection")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], seen
    stop.set()
    thread.join(timeout=5)
    server.close()


def _network_repo(make_repo: MakeRepo, port: int) -> Path:
    return make_repo(
        {
            "test_net.py": f"""
                import socket

                import pytest


                def test_cannot_reach_the_host():
                    with pytest.raises(OSError):
                        socket.create_connection(("127.0.0.1", {port}), timeout=3).close()
            """,
        }
    )


@needs_bwrap
def test_the_network_is_unreachable_under_bwrap(make_repo: MakeRepo, loopback_server: tuple[int, list[str]]) -> None:
    port, seen = loopback_server
    repo = _network_repo(make_repo, port)
    report = run_in_workspace(repo, timeout_s=60)
    assert report.ok, report.failure_digest()
    assert seen == []
    assert report.isolation.startswith("bwrap(no-net")
    # The same test without bubblewrap does reach the server: the check above is not vacuous.
    report = run_in_workspace(repo, timeout_s=60, use_bwrap=False, sandbox="unsafe", rerun_failures=False)
    assert report.failed == 1
    assert seen == ["connection"]
    assert not report.isolation.startswith("bwrap(")
    assert "UNSAFE: untrusted code without network or file system isolation" in report.isolation


@needs_bwrap
def test_writes_outside_the_workspace_never_reach_the_host(make_repo: MakeRepo, tmp_path: Path) -> None:
    probe_home = Path.home() / f".vibe-sandbox-probe-{uuid.uuid4().hex[:8]}"
    outside = tmp_path / "outside.txt"
    repo = make_repo(
        {
            "test_write.py": f"""
                from pathlib import Path


                def test_home_is_out_of_reach():
                    # The real home is not in the sandbox, and the sandbox's own root is read-only. Which error
                    # that gives depends on where HOME is (EROFS, ENOENT): the outcome checked is on the host.
                    try:
                        Path({str(probe_home)!r}).write_text("pwned")
                    except OSError:
                        pass


                def test_other_directories_are_out_of_reach():
                    try:
                        Path({str(outside)!r}).write_text("pwned")
                    except OSError:
                        pass


                def test_the_workspace_is_writable():
                    Path("scratch.txt").write_text("fine")
            """,
        }
    )
    try:
        report = run_in_workspace(repo, timeout_s=60)
    finally:
        if probe_home.exists():
            probe_home.unlink()
            pytest.fail("the sandboxed test wrote into the real home directory")
    assert report.ok, report.failure_digest()
    assert report.passed == 3
    assert not outside.exists()


def test_a_suite_without_tests_is_a_clear_failure(make_repo: MakeRepo) -> None:
    repo = make_repo({"setup.py": "from setuptools import setup\nsetup(name='empty')\n", "lib.py": "X = 1\n"})
    report = run_in_workspace(repo, timeout_s=60)
    assert report.exit_code == 5
    assert report.summary == "no tests collected"
    assert not report.ok
    assert "no tests collected" in report.failure_digest()


def test_explicit_commands_pass_or_fail_on_their_exit_code(make_repo: MakeRepo) -> None:
    repo = make_repo({"check.sh": "#!/bin/sh\necho checking\nexit \"$1\"\n"})
    (repo / "check.sh").chmod(0o755)
    subprocess.run(["git", "commit", "-q", "-am", "exec bit"], cwd=repo, check=True)
    passed = run_in_workspace(repo, command="./check.sh 0", timeout_s=60)
    assert passed.ok
    assert passed.exit_code == 0
    assert passed.tests == []
    failed = run_in_workspace(repo, command=["./check.sh", "3"], timeout_s=60)
    assert not failed.ok
    assert failed.exit_code == 3
    assert "checking" in failed.failure_digest()


def test_bad_inputs_are_input_errors(make_repo: MakeRepo, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a directory"):
        run_test_suite(tmp_path / "missing")
    repo = make_repo({"README.md": "# nothing to test\n"})
    with pytest.raises(InputError, match="found no tests") as raised:
        run_test_suite(repo)
    assert f"found no tests to run in {repo.resolve()}:" in str(raised.value)  # the user's path, not the copy's
    with pytest.raises(InputError, match="command not found: 'no-such-test-runner'"):
        run_test_suite(repo, command="no-such-test-runner --all")


@pytest.mark.slow
def test_setup_builds_a_cached_environment_per_dependency_files(make_repo: MakeRepo, tmp_path: Path) -> None:
    cache = tmp_path / "envs"
    setup = 'python -c "import os; open(os.environ[\'VIRTUAL_ENV\'] + \'/setups\', \'a\').write(\'x\')"'
    repo = make_repo(
        {
            "requirements.txt": "# nothing yet\n",
            "test_env.py": """
                import os
                import sys


                def test_runs_in_the_setup_environment():
                    assert sys.prefix == os.environ["VIRTUAL_ENV"]
            """,
        }
    )
    first = run_in_workspace(repo, setup=setup, env_cache_dir=cache, timeout_s=300)
    assert first.ok, first.failure_digest()
    second = run_in_workspace(repo, setup=setup, env_cache_dir=cache, timeout_s=300)
    assert second.ok
    envs = [p for p in cache.iterdir() if p.is_dir()]
    assert len(envs) == 1
    assert (envs[0] / "setups").read_text() == "x"  # built once, reused the second time
    # A change of a dependency file (or of the setup command) means another environment.
    key = environment_key(repo, setup, sys.executable)
    assert envs[0].name == key
    (repo / "requirements.txt").write_text("# changed\n")
    assert environment_key(repo, setup, sys.executable) != key
    assert environment_key(repo, setup + " ", sys.executable) != environment_key(repo, setup, sys.executable)


def test_a_failing_setup_is_reported_not_raised(make_repo: MakeRepo, tmp_path: Path) -> None:
    repo = make_repo({"check.sh": "exit 0\n"})
    report = run_in_workspace(repo, command="sh check.sh", setup="echo cannot install; exit 7", timeout_s=60)
    assert not report.ok
    assert report.exit_code == 7
    assert "setup failed" in report.summary
    assert "cannot install" in report.failure_digest()


@pytest.mark.slow
@pytest.mark.skipif(
    (cargo_problem := toolchain_problem(["cargo", "--version"], ["rustc", "--version"])) is not None,
    reason=f"cargo cannot run here: {cargo_problem}",
)
def test_cargo_projects_report_each_test(make_repo: MakeRepo) -> None:
    repo = make_repo(
        {
            "Cargo.toml": '[package]\nname = "demo"\nversion = "0.1.0"\nedition = "2021"\n',
            "src/lib.rs": """
                pub fn add(a: i32, b: i32) -> i32 { a + b }

                #[cfg(test)]
                mod tests {
                    use super::*;

                    #[test]
                    fn adds() { assert_eq!(add(2, 2), 4); }

                    #[test]
                    fn fails() { assert_eq!(add(2, 2), 5, "math is broken"); }

                    #[test]
                    #[ignore]
                    fn ignored() {}
                }
            """,
        }
    )
    report = run_in_workspace(repo, timeout_s=300)
    outcomes = {t.id: t.outcome for t in report.tests}
    assert outcomes == {"tests::adds": "passed", "tests::fails": "failed", "tests::ignored": "skipped"}
    assert "math is broken" in {t.id: t for t in report.tests}["tests::fails"].message
    assert report.runner == "cargo"
    assert not report.ok


@pytest.mark.skipif(shutil.which("npm") is None or shutil.which("node") is None, reason="node/npm not installed")
def test_npm_projects_run_npm_test_and_read_tap_results(make_repo: MakeRepo) -> None:
    repo = make_repo(
        {
            "package.json": json.dumps({"name": "demo", "scripts": {"test": "node --test --test-reporter=tap"}}),
            "math.test.js": """
                const test = require('node:test');
                const assert = require('node:assert');
                test('adds', () => { assert.strictEqual(1 + 1, 2); });
                test('divides', () => { assert.strictEqual(6 / 3, 3); });
            """,
        }
    )
    report = run_in_workspace(repo, timeout_s=120)
    assert report.runner == "npm"
    assert {t.id: t.outcome for t in report.tests} == {"adds": "passed", "divides": "failed"}
    assert "2 !== 3" in report.failure_digest()
    assert not report.ok


def test_without_bubblewrap_the_run_says_which_isolation_it_had(
    make_repo: MakeRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    repo = make_repo({"test_x.py": "def test_x():\n    pass\n"})
    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    with open_workspace(repo) as workspace:
        # A PATH without bwrap on it: the machine of a developer who has not installed bubblewrap.
        monkeypatch.setenv("PATH", str(empty_path))
        with caplog.at_level("WARNING", logger="tasks.testing"):
            # The user's own code may run without bubblewrap, with the warning.
            report = run_test_suite(workspace.path, timeout_s=60, trusted_code=True)
        monkeypatch.undo()
    assert report.ok, report.failure_digest()
    assert "bwrap" not in report.isolation.split(" [")[0]
    assert "no network or file system isolation: bwrap is not installed" in report.isolation
    assert any("without bubblewrap" in r.getMessage() for r in caplog.records)


@pytest.mark.slow
@pytest.mark.skipif(
    (go_problem := toolchain_problem(["go", "version"])) is not None, reason=f"go cannot run here: {go_problem}"
)
def test_go_modules_report_each_test_and_rerun_flaky_ones(make_repo: MakeRepo) -> None:
    repo = make_repo(
        {
            "go.mod": "module example.com/calc\n\ngo 1.19\n",
            "calc.go": "package calc\n\nfunc Add(a, b int) int { return a + b }\n",
            "calc_test.go": """
                package calc

                import (
                    "os"
                    "testing"
                )

                func TestAdd(t *testing.T) {
                    if Add(2, 3) != 5 {
                        t.Fatal("bad add")
                    }
                }

                func TestSub(t *testing.T) {
                    t.Run("zero case", func(t *testing.T) {
                        t.Errorf("got %d, want 3", Add(1, 1))
                    })
                }

                func TestFlaky(t *testing.T) {
                    if _, err := os.Stat("flaky.marker"); err != nil {
                        os.WriteFile("flaky.marker", []byte("x"), 0o644)
                        t.Fatal("first attempt fails")
                    }
                }
            """,
        }
    )
    report = run_in_workspace(repo, timeout_s=300)
    assert report.runner == "go"
    assert {t.id: t.outcome for t in report.tests} == {
        "example.com/calc::TestAdd": "passed",
        "example.com/calc::TestSub/zero_case": "failed",
        "example.com/calc::TestFlaky": "passed",
    }
    assert (report.passed, report.failed, report.flaky) == (1, 1, 1)
    assert "got 2, want 3" in report.failure_digest()


def test_a_file_bigger_than_the_limit_cannot_be_written(make_repo: MakeRepo) -> None:
    repo = make_repo(
        {
            "test_disk.py": """
                def test_fills_the_disk():
                    with open("huge.bin", "wb") as handle:
                        handle.write(b"x" * (3 * 1024 * 1024))
            """,
        }
    )
    report = run_in_workspace(repo, timeout_s=60, file_size_mb=1, rerun_failures=False)
    assert report.failed == 1
    assert "File too large" in report.tests[0].message
