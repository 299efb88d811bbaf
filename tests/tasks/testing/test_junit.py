"""Reading per-test results from JUnit XML and from cargo and go output."""

from __future__ import annotations

from pathlib import Path

from tasks.testing.junit import (
    parse_cargo_output,
    parse_go_output,
    parse_junit,
    parse_pytest_progress,
    parse_tap_output,
    pytest_node_id,
)

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="5">
<testcase classname="tests.test_a" name="test_ok" file="tests/test_a.py" line="1" time="0.010" />
<testcase classname="tests.test_a.TestGroup" name="test_param[1-x]" file="tests/test_a.py" line="5" time="0.5">
  <failure message="assert 1 == 2">def test_param():
&gt;   assert 1 == 2
E   assert 1 == 2</failure>
</testcase>
<testcase classname="tests.test_a" name="test_teardown" file="tests/test_a.py" line="9" time="0.1" />
<testcase classname="tests.test_a" name="test_teardown" file="tests/test_a.py" line="9" time="0.2">
  <error message="failed on teardown with &quot;OSError&quot;">teardown broke</error>
</testcase>
<testcase classname="tests.test_a" name="test_skip" file="tests/test_a.py" line="12" time="0">
  <skipped type="pytest.skip" message="not today">tests/test_a.py:12: not today</skipped>
</testcase>
<testcase classname="" name="tests.test_broken" time="0">
  <error message="collection failure">SyntaxError: invalid syntax</error>
</testcase>
</testsuite></testsuites>
"""


def test_pytest_junit_gives_node_ids_outcomes_and_messages(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(JUNIT)
    results = {r.id: r for r in parse_junit(path, pytest_ids=True)}
    assert {k: r.outcome for k, r in results.items()} == {
        "tests/test_a.py::test_ok": "passed",
        "tests/test_a.py::TestGroup::test_param[1-x]": "failed",
        "tests/test_a.py::test_teardown": "error",
        "tests/test_a.py::test_skip": "skipped",
        "tests.test_broken": "error",
    }
    assert "assert 1 == 2" in results["tests/test_a.py::TestGroup::test_param[1-x]"].message
    assert results["tests/test_a.py::TestGroup::test_param[1-x]"].duration_s == 0.5
    assert "teardown broke" in results["tests/test_a.py::test_teardown"].message
    assert abs(results["tests/test_a.py::test_teardown"].duration_s - 0.3) < 1e-9
    assert "not today" in results["tests/test_a.py::test_skip"].message


def test_generic_junit_ids_and_broken_files(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text('<testsuite><testcase classname="com.acme.AppTest" name="works" time="1"/></testsuite>')
    assert [r.id for r in parse_junit(path)] == ["com.acme.AppTest.works"]
    path.write_text("<testsuite><testcase name='half")
    assert parse_junit(path) == []
    assert parse_junit(tmp_path / "missing.xml") == []


def test_long_messages_are_trimmed_keeping_both_ends(tmp_path: Path) -> None:
    body = "first line\n" + "noise\n" * 5000 + "E   AssertionError: the real reason"
    path = tmp_path / "junit.xml"
    case = f'<testcase classname="t" name="x"><failure message="m">{body}</failure></testcase>'
    path.write_text(f"<testsuite>{case}</testsuite>")
    (result,) = parse_junit(path)
    assert len(result.message) <= 2000
    assert result.message.startswith("m\nfirst line")
    assert result.message.endswith("E   AssertionError: the real reason")


def test_node_ids_without_file_fall_back_to_the_module_path() -> None:
    assert pytest_node_id("pkg.test_mod", "test_x", None) == "pkg/test_mod.py::test_x"
    assert pytest_node_id("pkg.test_mod.TestA", "test_y", "pkg/test_mod.py") == "pkg/test_mod.py::TestA::test_y"


CARGO = """
running 3 tests
test tests::ignored ... ignored
test tests::adds ... ok
test tests::fails ... FAILED

failures:

---- tests::fails stdout ----
thread 'tests::fails' panicked at src/lib.rs:9:18:
assertion `left == right` failed: math is broken

failures:
    tests::fails

test result: FAILED. 1 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s
"""


def test_cargo_output_gives_each_test() -> None:
    results = {r.id: r for r in parse_cargo_output(CARGO)}
    assert {k: r.outcome for k, r in results.items()} == {
        "tests::ignored": "skipped", "tests::adds": "passed", "tests::fails": "failed",
    }  # fmt: skip
    assert "math is broken" in results["tests::fails"].message


GO = """=== RUN   TestAdd
--- PASS: TestAdd (0.00s)
=== RUN   TestSub
=== RUN   TestSub/zero_case
    calc_test.go:12: got 1, want 2
--- FAIL: TestSub (0.01s)
    --- FAIL: TestSub/zero_case (0.01s)
=== RUN   TestSkip
    calc_test.go:16: later
--- SKIP: TestSkip (0.00s)
FAIL
FAIL\texample.com/calc\t0.012s
=== RUN   TestOther
--- PASS: TestOther (0.20s)
ok  \texample.com/other\t0.210s
"""


def test_go_output_gives_each_test_with_its_package() -> None:
    results = {r.id: r for r in parse_go_output(GO)}
    assert {k: r.outcome for k, r in results.items()} == {
        "example.com/calc::TestAdd": "passed",
        "example.com/calc::TestSub/zero_case": "failed",
        "example.com/calc::TestSkip": "skipped",
        "example.com/other::TestOther": "passed",
    }
    assert results["example.com/calc::TestSub/zero_case"].message == "calc_test.go:12: got 1, want 2"
    assert results["example.com/calc::TestSkip"].message == "calc_test.go:16: later"
    assert results["example.com/other::TestOther"].duration_s == 0.2


TAP = """TAP version 13
# Subtest: adds
ok 1 - adds
  ---
  duration_ms: 1.2
  ...
# Subtest: math
    # Subtest: divides
    not ok 1 - divides
      ---
      error: |-
        Expected values to be strictly equal:
        2 !== 3
      ...
    # Subtest: later
    ok 2 - later # SKIP
    1..2
not ok 2 - math
1..2
"""


def test_tap_output_gives_the_innermost_tests() -> None:
    results = {r.id: r for r in parse_tap_output(TAP)}
    assert {k: r.outcome for k, r in results.items()} == {
        "adds": "passed", "math > divides": "failed", "math > later": "skipped",
    }  # fmt: skip
    assert "2 !== 3" in results["math > divides"].message
    assert parse_tap_output("plain output\nok 1 - not tap without a version line\n") == []


def test_pytest_progress_names_the_finished_tests_and_the_one_running() -> None:
    output = (
        "collecting ... collected 4 items\n\n"
        "test_v.py::test_a PASSED                                                 [ 25%]\n"
        "test_v.py::test_b[x-1] FAILED                                            [ 50%]\n"
        "test_v.py::test_c "
    )
    finished, running = parse_pytest_progress(output)
    assert [(r.id, r.outcome) for r in finished] == [
        ("test_v.py::test_a", "passed"), ("test_v.py::test_b[x-1]", "failed"),
    ]  # fmt: skip
    assert running == "test_v.py::test_c"
    assert parse_pytest_progress("1 passed in 0.1s\n")[1] is None
