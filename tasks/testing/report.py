"""The result of a test run: per-test outcomes, counts, and renderings for the CLI, PR bodies and the LLM."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

__all__ = ["Outcome", "TestCaseResult", "TestReport", "TestRun", "normalise_output", "trim_message"]

Outcome = Literal["passed", "failed", "error", "skipped"]

_MESSAGE_CHARS = 2000


def trim_message(text: str, max_chars: int = _MESSAGE_CHARS) -> str:
    """Shorten a failure message, keeping its start (what failed) and its end (the assertion and the error)."""
    text = text.strip()
    if len(text) <= max_chars:
        return text
    head = max_chars // 4
    tail = max_chars - head - 5
    return f"{text[:head].rstrip()}\n...\n{text[-tail:].lstrip()}"


_DURATION = re.compile(r"\b\d+(?:\.\d+)?\s?(?:s|ms|sec|seconds)\b")


def normalise_output(text: str, *, workspace: Path) -> str:
    """Test output made stable across runs: the workspace's temporary path and timings removed.

    The model should see paths relative to the repository, and identical failures must produce identical
    prompts (the LLM cache and replay cassettes key on the prompt).
    """
    for prefix in {str(workspace), str(workspace.resolve())}:
        text = text.replace(prefix + "/", "").replace(prefix, ".")
    return _DURATION.sub("<t>", text)


class TestCaseResult(BaseModel):
    """One test's outcome.

    Attributes:
        id: the runner's id of the test: the pytest node id, `module::test` for cargo,
            `package::TestName/subtest` for go, `suite > test` for TAP output.
        outcome: passed, failed, error (setup/collection/crash) or skipped.
        duration_s: how long it ran, in seconds.
        message: the trimmed failure, error or skip message ("" when it passed).
        flaky: it failed first and passed when re-run on its own (its outcome is then "passed").
    """

    __test__ = False  # not a pytest test class, despite its name
    model_config = ConfigDict(frozen=True)

    id: str
    outcome: Outcome
    duration_s: float = 0.0
    message: str = ""
    flaky: bool = False

    def to_json_dict(self) -> dict[str, JsonValue]:
        """The CLI's JSON shape of one test."""
        duration = round(self.duration_s, 4)
        return {"id": self.id, "outcome": self.outcome, "duration_s": duration, "message": self.message}


class TestReport(BaseModel):
    """The result of one test suite run.

    Counts: `passed` + `failed` + `errors` + `skipped` + `flaky` is the number of tests. A flaky test failed on
    the first run and passed when re-run on its own; it is counted in `flaky` only.

    Attributes:
        passed, failed, errors, skipped, flaky: the counts.
        timed_out: the wall-clock limit was reached and the run was killed.
        exit_code: the test command's exit code (None when it was killed by the timeout).
        duration_s: wall time of the run, re-runs included.
        tests: the per-test results, when the runner reported them (JUnit XML or its output).
        isolation: the sandbox layers that were used.
        command: the command that ran.
        runner: what ran the tests: pytest, npm, go, cargo or custom (an explicit command of unknown kind).
        summary: one line on how the run ended ("3 failed, 10 passed", "no tests collected", "timed out").
        output: the end of the command's output (for runs without per-test results and for diagnosis).
    """

    __test__ = False
    model_config = ConfigDict(frozen=True)

    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    flaky: int = 0
    timed_out: bool = False
    exit_code: int | None = None
    duration_s: float = 0.0
    tests: list[TestCaseResult] = Field(default_factory=list)
    isolation: str = ""
    command: list[str] = Field(default_factory=list)
    runner: str = "custom"
    summary: str = ""
    output: str = ""

    @property
    def total(self) -> int:
        """The number of tests."""
        return self.passed + self.failed + self.errors + self.skipped + self.flaky

    @property
    def ok(self) -> bool:
        """Whether the suite passed: it ran to the end, nothing failed or errored, and it ran tests.

        A run without per-test results (an explicit command of unknown kind) passes on exit code 0. A run whose
        only failures turned out flaky passes even though its first exit code was not 0.
        """
        if self.timed_out or self.exit_code is None or self.failed or self.errors:
            return False
        if self.tests:
            return self.exit_code == 0 or self.flaky > 0
        return self.exit_code == 0 and self.runner == "custom"

    def to_json_dict(self) -> dict[str, JsonValue]:
        """Exactly the CLI's JSON keys."""
        return {
            "passed": self.passed,
            "failed": self.failed,
            "errors": self.errors,
            "skipped": self.skipped,
            "flaky": self.flaky,
            "timed_out": self.timed_out,
            "exit_code": self.exit_code,
            "duration_s": round(self.duration_s, 3),
            "tests": [t.to_json_dict() for t in self.tests],
        }

    def counts_line(self) -> str:
        """`2 passed, 1 failed` style counts (zero counts left out), for humans and CI log readers."""
        parts = [
            f"{n} {label}"
            for n, label in (
                (self.passed, "passed"),
                (self.failed, "failed"),
                (self.errors, "errors"),
                (self.skipped, "skipped"),
                (self.flaky, "flaky"),
            )
            if n
        ]
        return ", ".join(parts) or "no tests"

    def table_rows(self, max_rows: int = 500) -> list[dict[str, str | float]]:
        """Rows for a Prefect table artifact: problems first, then the rest, at most `max_rows`."""
        order = {"failed": 0, "error": 1, "passed": 3, "skipped": 4}
        ranked = sorted(self.tests, key=lambda t: (0 if t.flaky else order[t.outcome], t.id))
        return [
            {
                "test": t.id,
                "outcome": "flaky" if t.flaky else t.outcome,
                "duration_s": round(t.duration_s, 3),
                "message": t.message.splitlines()[-1][:200] if t.message else "",
            }
            for t in ranked[:max_rows]
        ]

    def to_markdown(self, max_rows: int = 100) -> str:
        """A summary and a table of tests (problems first), for pull request bodies and artifacts."""
        status = "passed" if self.ok else "FAILED"
        lines = [
            f"### Tests {status}: {self.counts_line()}",
            "",
            f"- Result: {self.summary or self.counts_line()}",
            f"- Duration: {self.duration_s:.1f} s" + (" (timed out)" if self.timed_out else ""),
            f"- Exit code: {self.exit_code if self.exit_code is not None else 'none (killed)'}",
            f"- Command: `{' '.join(self.command)}`" if self.command else "- Command: none",
            f"- Sandbox: {self.isolation or 'none'}",
        ]
        rows = self.table_rows(max_rows)
        if rows:
            lines += ["", "| Test | Outcome | Duration (s) | Message |", "| --- | --- | --- | --- |"]
            for row in rows:
                message = str(row["message"]).replace("|", "\\|").replace("`", "'")
                test = str(row["test"]).replace("|", "\\|")
                lines.append(f"| `{test}` | {row['outcome']} | {row['duration_s']} | {message} |")
            if len(self.tests) > len(rows):
                lines.append(f"\n_{len(self.tests) - len(rows)} more tests not shown._")
        elif self.output and not self.ok:
            lines += ["", "Output (end):", "", "```", self.output[-3000:].strip(), "```"]
        return "\n".join(lines) + "\n"

    def failure_digest(self, max_chars: int = 6000) -> str:
        """What went wrong, trimmed to `max_chars`: each failing test with its message (for the LLM to repair).

        Returns "" when the suite passed.
        """
        if self.ok:
            return ""
        chunks: list[str] = []
        if self.summary:
            chunks.append(self.summary)
        problems = [t for t in self.tests if t.outcome in ("failed", "error")]
        if problems:
            per_test = max(200, (max_chars - 200) // len(problems))
            for test in problems:
                label = "FAILED" if test.outcome == "failed" else "ERROR"
                chunks.append(f"{label} {test.id}\n{trim_message(test.message, per_test)}".rstrip())
        elif self.output:
            chunks.append("Output (end):\n" + self.output[-max(500, max_chars - 500) :].strip())
        digest = "\n\n".join(chunks)
        return digest if len(digest) <= max_chars else trim_message(digest, max_chars)


class TestRun(BaseModel):
    """A test run as the flows and the pipeline keep it: the report and its renderings (frozen, JSON round-trip).

    Attributes:
        ok: whether the suite passed (`report.ok`).
        report: the runner's report, with real paths and durations.
        digest: the failures for the model, stable across runs (`normalise_output`: no temporary paths, no
            timings), so that identical failures make identical prompts; "" when the suite passed.
        markdown: the report as markdown, for summaries and pull request bodies.
    """

    __test__ = False
    model_config = ConfigDict(frozen=True)

    ok: bool
    report: TestReport
    digest: str
    markdown: str

    @classmethod
    def of(cls, report: TestReport, *, workspace: Path, digest_chars: int = 6000) -> TestRun:
        """The run of `report`, its digest normalised against `workspace` (the path the tests ran on)."""
        return cls(
            ok=report.ok,
            report=report,
            digest=normalise_output(report.failure_digest(digest_chars), workspace=workspace),
            markdown=report.to_markdown(),
        )
