"""Finding the test command from the files in a workspace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.testing import detect_runner, plan_tests
from vibe.errors import InputError


@pytest.mark.parametrize(
    ("files", "runner"),
    [
        ({"pyproject.toml": ""}, "pytest"),
        ({"setup.py": ""}, "pytest"),
        ({"pytest.ini": ""}, "pytest"),
        ({"Cargo.toml": ""}, "cargo"),
        ({"go.mod": "module x\n"}, "go"),
        ({"package.json": json.dumps({"scripts": {"test": "jest"}})}, "npm"),
        ({"src/deep/test_thing.py": ""}, "pytest"),
    ],
)
def test_runner_is_chosen_by_the_files_present(tmp_path: Path, files: dict[str, str], runner: str) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    found = detect_runner(tmp_path)
    assert found is not None
    assert found[0] == runner


def test_npm_placeholder_script_is_not_a_test_suite(tmp_path: Path) -> None:
    script = 'echo "Error: no test specified" && exit 1'
    (tmp_path / "package.json").write_text(json.dumps({"scripts": {"test": script}}))
    assert detect_runner(tmp_path) is None
    with pytest.raises(InputError, match="found no tests"):
        plan_tests(tmp_path, None, python="python3")


def test_detected_commands(tmp_path: Path) -> None:
    (tmp_path / "go.mod").write_text("module x\n")
    assert plan_tests(tmp_path, None, python="python3").command == ("go", "test", "-v", "./...")
    (tmp_path / "setup.cfg").write_text("")
    plan = plan_tests(tmp_path, None, python="/venv/bin/python")
    assert plan.command == ("/venv/bin/python", "-m", "pytest")
    argv = plan.run_argv(Path("/results/junit.xml"))
    assert "--junitxml=/results/junit.xml" in argv
    assert "no:cacheprovider" in argv


def test_explicit_commands_keep_their_kind_and_rerun_one_test(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    plan = plan_tests(tmp_path, "pytest tests -k 'fast and not slow'", python="python3")
    assert (plan.runner, plan.explicit) == ("pytest", True)
    rerun = plan.rerun_argv("tests/test_a.py::test_x", Path("/r.xml"), tmp_path)
    # The explicit path argument is dropped so that only the one test runs again.
    assert rerun[:3] == ["pytest", "-k", "fast and not slow"]
    assert "tests" not in rerun
    assert rerun[-1] == "tests/test_a.py::test_x"
    cargo = plan_tests(tmp_path, ["cargo", "test", "--release"], python="python3")
    assert cargo.runner == "cargo"
    assert cargo.rerun_argv("m::t", Path("/r.xml"), tmp_path) == ["cargo", "test", "--release", "--", "--exact", "m::t"]
    go = plan_tests(tmp_path, "go test ./...", python="python3")
    assert go.rerun_argv("example.com/calc::TestSub/zero case", Path("/r.xml"), tmp_path) == [
        "go", "test", "-v", "-count=1", "-run", "^TestSub$/^zero\\ case$", "example.com/calc",
    ]  # fmt: skip
    assert plan_tests(tmp_path, "make check", python="python3").runner == "custom"
    with pytest.raises(InputError, match="empty"):
        plan_tests(tmp_path, "  ", python="python3")


def test_each_runner_kind_answers_for_itself(tmp_path: Path) -> None:
    from tasks.testing.runners import CARGO, CUSTOM, GO, NPM, PYTEST

    # pytest's own exit codes say more than the counts; an interrupted run that still reported tests does not.
    assert PYTEST.explain_exit(5, []) == "no tests collected"
    assert PYTEST.explain_exit(2, []) == "interrupted: errors while collecting tests"
    assert PYTEST.explain_exit(1, []) is None
    assert CARGO.explain_exit(5, []) is None
    # A collection error of a whole file, a go test without its package, npm and custom commands: no re-run.
    assert PYTEST.rerun_argv(("pytest",), "tests/test_a.py", Path("/r.xml"), tmp_path) is None
    assert GO.rerun_argv(("go", "test", "./..."), "TestX", Path("/r.xml"), tmp_path) is None
    assert NPM.rerun_argv(("npm", "test"), "suite > test", Path("/r.xml"), tmp_path) is None
    assert CUSTOM.rerun_argv(("make", "check"), "x", Path("/r.xml"), tmp_path) is None
    # A custom command's TAP output still gives per-test results.
    tap = "TAP version 13\nok 1 - adds\nnot ok 2 - subtracts\n"
    assert [t.outcome for t in CUSTOM.parse_results(tmp_path / "absent.xml", tap)] == ["passed", "failed"]
    assert [kind.uses_virtualenv for kind in (PYTEST, CARGO, GO, NPM, CUSTOM)] == [True, False, False, False, False]
