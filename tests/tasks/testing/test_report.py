"""What a TestReport tells the CLI, a pull request and the LLM."""

from __future__ import annotations

from tasks.testing import TestCaseResult, TestReport


def report(**kwargs: object) -> TestReport:
    return TestReport(**kwargs)  # type: ignore[arg-type]


def test_ok_needs_tests_or_an_explicit_command() -> None:
    passed = [TestCaseResult(id="t::a", outcome="passed")]
    assert report(passed=1, exit_code=0, tests=passed, runner="pytest").ok
    assert not report(exit_code=5, runner="pytest").ok  # nothing collected
    assert report(exit_code=0, runner="custom").ok  # an explicit command that succeeded
    assert not report(exit_code=1, runner="custom").ok
    assert not report(passed=1, exit_code=None, timed_out=True, tests=passed, runner="pytest").ok
    failed = [*passed, TestCaseResult(id="t::b", outcome="failed", message="boom")]
    assert not report(passed=1, failed=1, exit_code=1, tests=failed, runner="pytest").ok
    flaky = [*passed, TestCaseResult(id="t::b", outcome="passed", flaky=True)]
    assert report(passed=1, flaky=1, exit_code=1, tests=flaky, runner="pytest").ok


def test_markdown_lists_problems_first_and_escapes_tables() -> None:
    tests = [
        TestCaseResult(id="t::ok", outcome="passed", duration_s=0.1),
        TestCaseResult(id="t::bad|pipe", outcome="failed", message="long trace\nE   assert a | b"),
    ]
    text = report(passed=1, failed=1, exit_code=1, tests=tests, runner="pytest", command=["pytest"]).to_markdown()
    assert text.startswith("### Tests FAILED: 1 passed, 1 failed")
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert rows[0].startswith("| `t::bad\\|pipe` | failed")
    assert "assert a \\| b" in rows[0]


def test_failure_digest_fits_the_budget_and_names_each_failure() -> None:
    tests = [
        TestCaseResult(id=f"t::f{i}", outcome="failed", message="x" * 5000 + f"\nreason {i}") for i in range(5)
    ]
    digest = report(failed=5, exit_code=1, tests=tests, runner="pytest", summary="5 failed").failure_digest(3000)
    assert len(digest) <= 3000
    for i in range(5):
        assert f"FAILED t::f{i}" in digest
        assert f"reason {i}" in digest
    assert report(exit_code=0, runner="custom").failure_digest() == ""


def test_json_has_exactly_the_cli_keys() -> None:
    tests = [TestCaseResult(id="t::a", outcome="passed", flaky=True, duration_s=0.123456)]
    data = report(flaky=1, exit_code=1, tests=tests, isolation="x", output="y").to_json_dict()
    keys = ["passed", "failed", "errors", "skipped", "flaky", "timed_out", "exit_code", "duration_s", "tests"]
    assert list(data) == keys
    assert data["tests"] == [{"id": "t::a", "outcome": "passed", "duration_s": 0.1235, "message": ""}]
