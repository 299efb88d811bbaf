"""What a pipeline run did, and how it is told: the JSON summary, the markdown artifact, the PR's text."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tasks.codegen.budget import Budget


@dataclass
class AttemptRecord:
    """One generate-apply-test round."""

    number: int
    written: list[str]
    problems: list[str]
    tests: dict[str, Any] | None

    @property
    def passed(self) -> int:
        return int(self.tests["report"].get("passed", 0)) if self.tests else 0

    @property
    def failed(self) -> int:
        if not self.tests:
            return 0
        report = self.tests["report"]
        return int(report.get("failed", 0)) + int(report.get("errors", 0))

    @property
    def ok(self) -> bool:
        return bool(self.tests and self.tests["ok"])


@dataclass
class PipelineOutcome:
    """The state of a run as it goes, turned into its summary at the end."""

    request: str
    model: str
    key: str
    max_attempts: int
    attempts: list[AttemptRecord] = field(default_factory=list)
    models: set[str] = field(default_factory=set)
    stopped: str | None = None
    refused: str | None = None
    changed_files: list[str] = field(default_factory=list)
    patch_path: str | None = None
    pr: dict[str, Any] | None = None

    def add_attempt(
        self, number: int, *, written: list[str], problems: list[str], tests: dict[str, Any] | None
    ) -> None:
        self.attempts.append(AttemptRecord(number, list(written), list(problems), tests))

    def stop(self, reason: str) -> None:
        """The budget ran out: no more LLM calls."""
        self.stopped = reason

    def refuse(self, attempt: int, reason: str) -> None:
        """A reply asked for an unsafe edit: the run fails."""
        self.refused = reason
        self.attempts.append(AttemptRecord(attempt, [], [reason], None))

    @property
    def last_tested(self) -> AttemptRecord | None:
        return next((a for a in reversed(self.attempts) if a.tests is not None), None)

    @property
    def tests_ok(self) -> bool:
        last = self.attempts[-1] if self.attempts else None
        return bool(last and last.ok)

    @property
    def status(self) -> str:
        if self.tests_ok:
            return "passed"
        if self.refused:
            return "refused"
        if self.stopped:
            return "budget_exceeded"
        return "failed"

    def last_tests_markdown(self) -> str:
        last = self.last_tested
        return str(last.tests["markdown"]) if last and last.tests else "No tests were run."

    def to_summary(self, budget: Budget, *, run_id: str | None) -> dict[str, Any]:
        """The run's JSON summary (what `vibe run --json` prints)."""
        last = self.last_tested
        return {
            "status": self.status,
            "attempts": len(self.attempts),
            "tests": {"passed": last.passed if last else 0, "failed": last.failed if last else 0},
            "pr": self.pr,
            "cost_usd": round(budget.cost_usd, 6),
            "tokens": budget.tokens,
            "usage": budget.to_json_dict()["by_provider"],
            "run_id": run_id,
            "key": self.key,
            "model": ", ".join(sorted(self.models)) or self.model,
            "changed_files": list(self.changed_files),
            "patch": self.patch_path,
            "stopped": self.stopped,
            "refused": self.refused,
            "history": [
                {
                    "attempt": a.number,
                    "written": a.written,
                    "problems": a.problems,
                    "tested": a.tests is not None,
                    "passed": a.passed,
                    "failed": a.failed,
                }
                for a in self.attempts
            ],
        }


def pr_title(request: str) -> str:
    """A pull request title from the request's first line."""
    first = request.strip().splitlines()[0] if request.strip() else "vibe change"
    return first if len(first) <= 72 else first[:69].rstrip() + "..."


def pr_summary(outcome: PipelineOutcome) -> str:
    """A short description of the change for the pull request body."""
    files = "\n".join(f"- `{path}`" for path in outcome.changed_files) or "- (no files)"
    rounds = len(outcome.attempts)
    verdict = "the tests pass" if outcome.tests_ok else "the tests still fail"
    return f"Changed files:\n{files}\n\nAfter {rounds} attempt(s) of {outcome.max_attempts}, {verdict}."


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_run_markdown(outcome: PipelineOutcome, budget: Budget) -> str:
    """The final markdown artifact: outcome, attempts, test table, PR link, tokens and cost per provider."""
    lines = [
        f"# feature_pipeline: {outcome.status}",
        "",
        f"**Request:** {outcome.request.strip()}",
        "",
        f"**Model:** {', '.join(sorted(outcome.models)) or outcome.model}  ",
        f"**Attempts:** {len(outcome.attempts)} of {outcome.max_attempts}  ",
        f"**Run key:** `{outcome.key}`",
        "",
    ]
    if outcome.stopped:
        lines += [f"**Stopped:** {outcome.stopped}", ""]
    if outcome.refused:
        lines += [f"**Refused:** {outcome.refused}", ""]
    lines += [
        "## Attempts",
        "",
        "| Attempt | Files written | Passed | Failed | Notes |",
        "| --- | --- | --- | --- | --- |",
    ]
    for a in outcome.attempts:
        note = "; ".join(a.problems) if a.problems else ("tests pass" if a.ok else "tests fail")
        files = ", ".join(a.written) or "-"
        tested = a.tests is not None
        lines.append(
            f"| {a.number} | {_cell(files)} | {a.passed if tested else '-'} | {a.failed if tested else '-'} "
            f"| {_cell(note[:300])} |"
        )
    lines += ["", "## Tests (last run)", "", outcome.last_tests_markdown().strip(), "", "## Pull request", ""]
    pr = outcome.pr
    if pr is None:
        lines.append("No pull request was opened.")
    elif pr.get("url"):
        lines.append(f"[{pr.get('url')}]({pr.get('url')}) on branch `{pr.get('branch')}`")
    else:
        lines.append(f"Local mode: branch `{pr.get('branch')}` pushed; description in `{pr.get('description_path')}`")
    if outcome.patch_path:
        lines += ["", f"The change as a patch: `{outcome.patch_path}`"]
    lines += [
        "",
        "## Usage",
        "",
        "| Provider | Calls | Cached | Input tokens | Output tokens | Cost (USD) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, usage in sorted(budget.by_provider.items()):
        lines.append(
            f"| {name} | {usage.calls} | {usage.cached_calls} | {usage.input_tokens} | {usage.output_tokens} "
            f"| {usage.cost_usd:.4f} |"
        )
    lines.append(f"| **total** | | | | {budget.tokens} tokens | **{budget.cost_usd:.4f}** |")
    return "\n".join(lines) + "\n"
