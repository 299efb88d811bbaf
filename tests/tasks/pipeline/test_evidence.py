"""The tests after a change compared with the tests on the base commit (SWE-bench's FAIL_TO_PASS/PASS_TO_PASS)."""

from __future__ import annotations

from pathlib import Path

from tasks.pipeline.evidence import (
    baseline_path,
    compare,
    load_baseline,
    request_allows_test_changes,
    save_baseline,
)
from tasks.testing.report import Outcome, TestCaseResult, TestReport


def report(**outcomes: Outcome) -> TestReport:
    tests = [TestCaseResult(id=f"t.py::{name}", outcome=outcome) for name, outcome in outcomes.items()]
    failed = sum(1 for t in tests if t.outcome == "failed")
    return TestReport(
        passed=sum(1 for t in tests if t.outcome == "passed"), failed=failed, exit_code=1 if failed else 0,
        tests=tests, runner="pytest",
    )  # fmt: skip


def test_each_test_is_listed_by_what_the_change_did_to_it() -> None:
    before = report(a="passed", b="failed", c="passed", d="passed", e="failed", f="passed")
    after = report(a="passed", b="passed", c="failed", d="skipped", e="failed", g="passed")
    evidence = compare(before, after)
    assert evidence.fixed == ("t.py::b",)
    assert evidence.added == ("t.py::g",)
    assert evidence.broken == ("t.py::c",)
    assert evidence.skipped == ("t.py::d",)
    assert evidence.removed == ("t.py::f",)
    assert evidence.pre_existing == ("t.py::e",)
    assert not evidence.ok


def test_a_deleted_failing_test_never_passes_unless_the_request_asks() -> None:
    before = report(a="passed", b="passed", target="failed")
    after = report(a="passed")  # the model deleted the failing test and a passing one with it
    assert after.ok
    evidence = compare(before, after)
    assert evidence.removed == ("t.py::b", "t.py::target")
    assert not evidence.ok
    assert compare(before, after, allow_changes=True).ok
    assert "Removed (ran before, no longer run): `t.py::b`, `t.py::target`" in evidence.markdown()
    # Deleting only the failing test is not fixing it either.
    assert compare(before, report(a="passed", b="passed")).removed == ("t.py::target",)
    assert compare(before, report(a="passed", b="passed", target="skipped")).skipped == ("t.py::target",)
    assert "needs review" in evidence.markdown()


def test_without_an_inventory_nothing_is_claimed() -> None:
    custom = TestReport(exit_code=0, runner="custom")
    assert compare(custom, report(a="passed")).ok
    assert compare(None, report(a="passed")).markdown() == ""


def test_requests_that_change_tests_are_recognised() -> None:
    assert request_allows_test_changes("Remove the obsolete tests for the v1 API")
    assert request_allows_test_changes("rename test_old to test_new")
    assert request_allows_test_changes("update the tests to the new signature")
    assert request_allows_test_changes("The flaky tests should be skipped on Windows")
    assert not request_allows_test_changes("Make median return the mean of the middle two values")
    assert not request_allows_test_changes("Change median so the test passes")
    assert not request_allows_test_changes("Fix the bug that makes test_median fail")


def test_the_baseline_cache_is_keyed_by_commit_and_environment(tmp_path: Path) -> None:
    one = baseline_path(tmp_path, base_commit="a" * 40, environment="pytest|3.12")
    assert one != baseline_path(tmp_path, base_commit="b" * 40, environment="pytest|3.12")
    assert one != baseline_path(tmp_path, base_commit="a" * 40, environment="pytest|3.13")
    assert "/baselines/v1/" in one.as_posix()
    assert load_baseline(one) is None
    save_baseline(one, report(a="passed"))
    assert load_baseline(one) == report(a="passed")
    one.write_text("{not json")
    assert load_baseline(one) is None
