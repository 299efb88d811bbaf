"""`vibe test` as a user runs it: a real process, real repositories, exit codes and JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.tasks.testing.conftest import MakeRepo

VIBE = str(Path(sys.executable).with_name("vibe"))

SUITE = {
    "test_calc.py": """
        import os


        def add(a, b):
            return a + b


        def test_add():
            assert add(2, 3) == 5


        def test_no_key_visible():
            assert "OPENAI_API_KEY" not in os.environ
    """,
}


def vibe_test(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENAI_API_KEY": "sk-cli-test-not-real"}
    env.pop("PREFECT_API_URL", None)
    return subprocess.run([VIBE, "test", *args], capture_output=True, text=True, env=env, timeout=300, check=False)


def test_passing_suite_prints_json_and_exits_0(make_repo: MakeRepo) -> None:
    repo = make_repo(SUITE)
    proc = vibe_test(str(repo), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) == {
        "passed", "failed", "errors", "skipped", "flaky", "timed_out", "exit_code", "duration_s", "tests",
    }  # fmt: skip
    assert (data["passed"], data["failed"], data["exit_code"], data["timed_out"]) == (2, 0, 0, False)
    assert {t["id"] for t in data["tests"]} == {"test_calc.py::test_add", "test_calc.py::test_no_key_visible"}
    assert "sk-cli-test-not-real" not in proc.stdout + proc.stderr


def test_uncommitted_breakage_is_tested_and_fails_with_exit_1(make_repo: MakeRepo) -> None:
    repo = make_repo(SUITE)
    broken = (repo / "test_calc.py").read_text().replace("return a + b", "return a * b")
    (repo / "test_calc.py").write_text(broken)
    proc = vibe_test(str(repo))
    assert proc.returncode == 1
    assert "| `test_calc.py::test_add` | failed" in proc.stdout
    assert proc.stdout.rstrip().splitlines()[-1] == "1 passed, 1 failed"
    # The user's uncommitted edit is still there and nothing was added next to it.
    assert (repo / "test_calc.py").read_text() == broken
    status = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=repo, capture_output=True, text=True)
    assert status.stdout == " M test_calc.py\n"


def test_bad_input_exits_2_with_one_line(make_repo: MakeRepo, tmp_path: Path) -> None:
    missing = vibe_test(str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"error: {tmp_path / 'nowhere'} does not exist"
    repo = make_repo(SUITE)
    unknown = vibe_test(str(repo), "--command", "definitely-not-a-test-runner")
    assert unknown.returncode == 2
    assert "command not found: 'definitely-not-a-test-runner'" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_timeout_option_ends_a_hanging_suite(make_repo: MakeRepo) -> None:
    repo = make_repo({"test_hang.py": "import time\n\n\ndef test_hangs():\n    time.sleep(3600)\n"})
    proc = vibe_test(str(repo), "--timeout", "8", "--json")
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert data["timed_out"] is True
    assert data["exit_code"] is None
