"""Per-test results from JUnit XML (pytest, jest-junit, surefire, gotestsum...) and from runners' text output.

The XML was written by a process running untrusted code, so it is read defensively: a size cap, and the
standard library's expat parser (which fetches no external entities and, since expat 2.4, bounds entity
expansion). A malformed file is "no results", never an exception.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from tasks.testing.report import Outcome, TestCaseResult, trim_message

__all__ = [
    "merge_results", "parse_cargo_output", "parse_go_output", "parse_junit", "parse_pytest_progress",
    "parse_tap_output", "pytest_node_id",
]  # fmt: skip

_MAX_XML_BYTES = 64 * 1024 * 1024


def pytest_node_id(classname: str, name: str, file: str | None) -> str:
    """Rebuild pytest's node id (`tests/test_a.py::TestC::test_x[1]`) from a JUnit testcase.

    pytest's xunit1 family writes the file; the class path is what remains of `classname` after the module.
    """
    if not classname:
        return name
    if file:
        file = file.replace("\\", "/")
        module = file[:-3].replace("/", ".") if file.endswith(".py") else file
        rest = classname[len(module) :].lstrip(".") if classname.startswith(module) else ""
        return "::".join(part for part in (file, *rest.split("."), name) if part) if rest else f"{file}::{name}"
    return f"{classname.replace('.', '/')}.py::{name}"


def _float(value: str | None) -> float:
    try:
        return float(value) if value else 0.0
    except ValueError:
        return 0.0


def _message(element: ET.Element) -> str:
    message = element.get("message") or ""
    body = (element.text or "").strip()
    if body and message and message in body:
        return trim_message(body)
    return trim_message(f"{message}\n{body}" if body else message)


def parse_junit(path: Path, *, pytest_ids: bool = False) -> list[TestCaseResult]:
    """The test cases of a JUnit XML file, or [] if it is missing, too large or malformed.

    Args:
        path: the XML file.
        pytest_ids: rebuild pytest node ids (`file::Class::name`) instead of `classname.name`.
    """
    try:
        if not path.is_file() or path.stat().st_size > _MAX_XML_BYTES:
            return []
        root = ET.parse(path).getroot()  # noqa: S314 -- see the module docstring: size-capped, no external entities
    except (OSError, ET.ParseError):
        return []
    results: list[TestCaseResult] = []
    for case in root.iter("testcase"):
        name = case.get("name") or ""
        classname = case.get("classname") or ""
        if pytest_ids:
            test_id = pytest_node_id(classname, name, case.get("file"))
        else:
            test_id = f"{classname}.{name}" if classname else name
        failure = case.find("failure")
        error = case.find("error")
        skipped = case.find("skipped")
        outcome: Outcome
        if failure is not None:
            outcome, message = "failed", _message(failure)
        elif error is not None:
            outcome, message = "error", _message(error)
        elif skipped is not None:
            outcome, message = "skipped", _message(skipped)
        else:
            outcome, message = "passed", ""
        duration = _float(case.get("time"))
        results.append(TestCaseResult(id=test_id, outcome=outcome, duration_s=duration, message=message))
    return merge_results(results)


# Which outcome wins when a test is reported twice (pytest reports a teardown error as a second entry).
_RANK: dict[str, int] = {"failed": 3, "error": 2, "passed": 1, "skipped": 0}


def merge_results(results: list[TestCaseResult]) -> list[TestCaseResult]:
    """One result per id, keeping the worst outcome (a test that failed and errored in teardown is failed)."""
    merged: dict[str, TestCaseResult] = {}
    for result in results:
        seen = merged.get(result.id)
        if seen is None:
            merged[result.id] = result
            continue
        worst = seen if _RANK[seen.outcome] >= _RANK[result.outcome] else result
        message = "\n".join(m for m in (seen.message, result.message) if m)
        merged[result.id] = worst.model_copy(
            update={"duration_s": seen.duration_s + result.duration_s, "message": trim_message(message)}
        )
    return list(merged.values())


_CARGO_LINE = re.compile(r"^test (?P<name>\S+)(?: - should panic)? \.\.\. (?P<status>ok|FAILED|ignored)", re.M)
_CARGO_FAILURE = re.compile(
    r"^---- (?P<name>\S+) stdout ----\n(?P<body>.*?)(?=^---- |^failures:$|^test result:)", re.M | re.S
)


def parse_cargo_output(output: str) -> list[TestCaseResult]:
    """Per-test results from `cargo test` output (`test a::b ... ok|FAILED|ignored`)."""
    failures = {m.group("name"): trim_message(m.group("body")) for m in _CARGO_FAILURE.finditer(output)}
    results: list[TestCaseResult] = []
    for match in _CARGO_LINE.finditer(output):
        name = match.group("name")
        status = match.group("status")
        outcome: Outcome = "passed" if status == "ok" else "failed" if status == "FAILED" else "skipped"
        results.append(TestCaseResult(id=name, outcome=outcome, message=failures.get(name, "")))
    return merge_results(results)


_GO_RESULT = re.compile(r"^\s*--- (?P<status>PASS|FAIL|SKIP): (?P<name>\S+) \((?P<time>[\d.]+)s\)", re.M)
_GO_PACKAGE = re.compile(r"^(?:ok|FAIL|---)\s+(?P<pkg>\S+)\s+[\d.]+s", re.M)
_GO_RUN = re.compile(r"^\s*=== (?:RUN|PAUSE|CONT|NAME)\s+(?P<name>\S+)", re.M)


def _go_log(output: str, name: str, before: int) -> str:
    # A test's log lines follow its last `=== RUN name` (or CONT/NAME) line, up to the next marker.
    starts = [m.end() for m in _GO_RUN.finditer(output, 0, before) if m.group("name") == name]
    if not starts:
        return ""
    lines = []
    for line in output[starts[-1] : before].splitlines():
        if line.strip().startswith(("=== ", "--- ")):
            break
        if line.strip():
            lines.append(line.strip())
    return trim_message("\n".join(lines))


def parse_go_output(output: str) -> list[TestCaseResult]:
    """Per-test results from `go test -v` output (`--- PASS: TestX (0.01s)`), named `package::TestX/subtest`.

    The package of a test is the one named by the next `ok`/`FAIL` summary line after it. A test with subtests
    is represented by its subtests only.
    """
    packages = [(m.start(), m.group("pkg")) for m in _GO_PACKAGE.finditer(output)]
    results: list[TestCaseResult] = []
    for match in _GO_RESULT.finditer(output):
        package = next((pkg for start, pkg in packages if start > match.start()), "")
        name = match.group("name")
        status = match.group("status")
        outcome: Outcome = "passed" if status == "PASS" else "failed" if status == "FAIL" else "skipped"
        message = _go_log(output, name, match.start()) if outcome != "passed" else ""
        test_id = f"{package}::{name}" if package else name
        results.append(
            TestCaseResult(id=test_id, outcome=outcome, duration_s=_float(match.group("time")), message=message)
        )
    ids = {r.id for r in results}
    return merge_results([r for r in results if not any(other.startswith(r.id + "/") for other in ids)])


_TAP_LINE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<not>not )?ok \d+(?: -)? (?P<name>[^#\n]*?)\s*(?:#\s*(?P<directive>SKIP|TODO)\b[^\n]*)?$",
    re.I,
)
_TAP_SUBTEST = re.compile(r"^(?P<indent>[ \t]*)# Subtest: (?P<name>.+?)\s*$")


def parse_tap_output(output: str) -> list[TestCaseResult]:
    """Per-test results from TAP output (`node --test`, tap reporters): `ok 1 - name` / `not ok 2 - name`.

    Nested subtests are named `parent > child` (only the innermost tests are kept); a failure's YAML block, up
    to its `...`, is its message.
    """
    if "TAP version" not in output:
        return []
    lines = output.splitlines()
    results: list[TestCaseResult] = []
    # Announced subtests by depth: in TAP a parent's result line comes after its children.
    open_parents: dict[int, str] = {}
    for index, line in enumerate(lines):
        subtest = _TAP_SUBTEST.match(line)
        if subtest is not None:
            open_parents[len(subtest.group("indent").expandtabs(4))] = subtest.group("name")
            continue
        match = _TAP_LINE.match(line)
        if match is None:
            continue
        depth = len(match.group("indent").expandtabs(4))
        name = match.group("name").strip()
        path = [open_parents[d] for d in sorted(open_parents) if d < depth]
        open_parents = {d: n for d, n in open_parents.items() if d < depth}
        directive = (match.group("directive") or "").upper()
        outcome: Outcome = "skipped" if directive else "failed" if match.group("not") else "passed"
        message = ""
        if outcome == "failed":
            block: list[str] = []
            for follow in lines[index + 1 : index + 200]:
                if follow.strip() == "...":
                    break
                block.append(follow.strip())
            message = trim_message("\n".join(b for b in block if b and b != "---"))
        results.append(TestCaseResult(id=" > ".join([*path, name]), outcome=outcome, message=message))
    names = {r.id for r in results}
    leaves = [r for r in results if not any(other.startswith(r.id + " > ") for other in names)]
    return merge_results(leaves)


_PYTEST_PROGRESS = re.compile(
    r"^(?P<id>\S+::\S+) (?P<status>PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b", re.M
)
_PYTEST_RUNNING = re.compile(r"^(?P<id>\S+::\S+) *$")
_PROGRESS_OUTCOMES: dict[str, Outcome] = {
    "PASSED": "passed", "XPASS": "passed", "FAILED": "failed", "ERROR": "error", "SKIPPED": "skipped",
    "XFAIL": "skipped",
}  # fmt: skip


def parse_pytest_progress(output: str) -> tuple[list[TestCaseResult], str | None]:
    """The tests `pytest -v` reported as finished, and the one it was running when the output stops.

    Used when a run was killed before pytest could write its JUnit XML.
    """
    results = [
        TestCaseResult(id=m.group("id"), outcome=_PROGRESS_OUTCOMES[m.group("status")])
        for m in _PYTEST_PROGRESS.finditer(output)
    ]
    lines = output.rstrip("\n").splitlines()
    running = _PYTEST_RUNNING.match(lines[-1]) if lines else None
    return merge_results(results), running.group("id") if running else None
