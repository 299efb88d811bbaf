"""What a pipeline run did, and how it is told: the typed records, the summary, the markdown artifact, the PR's text.

The records are frozen pydantic models: what the steps hand the pipeline (`TestRun`, `PublishedPR`), what
one attempt did (`AttemptRecord`) and the run's `RunSummary`; each round-trips through the run's journal.
`PipelineOutcome` is the run's state as it goes, turned into its summary at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from tasks.codegen.budget import Budget
from tasks.pipeline.evidence import TestEvidence
from tasks.pull_requests.protocol import PullRequestResult
from tasks.testing.report import TestRun

_FROZEN = ConfigDict(frozen=True)


class PublishedPR(BaseModel):
    """The pull request a run published (journal step `pr`; the summary's `pr`)."""

    model_config = _FROZEN

    branch: str
    number: int | None
    url: str | None
    created: bool
    local: bool
    description_path: str | None
    base: str
    nothing_to_commit: bool

    @classmethod
    def of(cls, result: PullRequestResult) -> PublishedPR:
        """The record of a publish step's result."""
        path = str(result.description_path) if result.description_path else None
        return cls(
            branch=result.branch,
            number=result.number,
            url=result.url,
            created=result.created,
            local=result.local,
            description_path=path,
            base=result.base,
            nothing_to_commit=result.nothing_to_commit,
        )


class AttemptRecord(BaseModel):
    """One generate-apply-test round: the files written, or the problems sent back, and its test run.

    Attributes:
        created: the written files that did not exist before this attempt.
        notes: what the apply step read differently from how it was written (a mapped path, a quotation).
        evidence: the test run compared with the base commit's (None: no test run, or no baseline).
    """

    model_config = _FROZEN

    number: int
    written: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    tests: TestRun | None = None
    created: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    evidence: TestEvidence | None = None

    @property
    def passed(self) -> int:
        return self.tests.report.passed if self.tests else 0

    @property
    def failed(self) -> int:
        return self.tests.report.failed + self.tests.report.errors if self.tests else 0

    @property
    def suite_ok(self) -> bool:
        """The suite itself passed (whatever the comparison with the base says)."""
        return bool(self.tests and self.tests.ok)

    @property
    def ok(self) -> bool:
        """The suite passed and no test that passed on the base commit is broken or gone (unless asked for)."""
        return self.suite_ok and (self.evidence is None or self.evidence.ok)


class TestCounts(BaseModel):
    __test__ = False
    model_config = _FROZEN

    passed: int
    failed: int


class ProviderTally(BaseModel):
    """What one provider billed during a run."""

    model_config = _FROZEN

    input_tokens: int
    output_tokens: int
    cost_usd: float
    calls: int
    cached_calls: int
    replayed_calls: int = 0
    list_cost_usd: float = 0.0


class AttemptLine(BaseModel):
    """One attempt as the summary's `history` lists it."""

    model_config = _FROZEN

    attempt: int
    written: list[str]
    problems: list[str]
    tested: bool
    passed: int
    failed: int
    notes: list[str] = []


class RunSummary(BaseModel):
    """The run's summary (journal step `summary`); `model_dump(mode="json")` is what `vibe run --json` reads."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    status: str
    attempts: int
    tests: TestCounts
    pr: PublishedPR | None
    cost_usd: float
    tokens: int
    usage: dict[str, ProviderTally]
    run_id: str | None
    key: str
    model: str
    changed_files: list[str]
    patch: str | None
    stopped: str | None
    refused: str | None
    history: list[AttemptLine]
    summary_path: str | None = None
    resumed: bool = False
    evidence: TestEvidence | None = None


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
    pr: PublishedPR | None = None

    def stop(self, reason: str) -> None:
        """The budget ran out: no more LLM calls."""
        self.stopped = reason

    def refuse(self, attempt: int, reason: str) -> None:
        """A reply asked for an unsafe edit: the run fails."""
        self.refused = reason
        self.attempts.append(AttemptRecord(number=attempt, problems=(reason,)))

    @property
    def models_used(self) -> str:
        return ", ".join(sorted(self.models)) or self.model

    @property
    def last_tested(self) -> AttemptRecord | None:
        return next((a for a in reversed(self.attempts) if a.tests is not None), None)

    @property
    def tests_ok(self) -> bool:
        last = self.attempts[-1] if self.attempts else None
        return bool(last and last.ok)

    @property
    def evidence(self) -> TestEvidence | None:
        """The last test run compared with the base commit's."""
        last = self.last_tested
        return last.evidence if last else None

    @property
    def needs_review(self) -> bool:
        """Tests that passed on the base commit are gone (removed, skipped, deselected): a person must look."""
        evidence = self.evidence
        return bool(evidence and evidence.lost)

    @property
    def status(self) -> str:
        if self.tests_ok:
            return "passed"
        tested = self.last_tested
        if tested is not None and tested.suite_ok and not tested.ok:
            return "needs_review"  # the tree's suite passes only because tests that passed before are gone
        if self.refused:
            return "refused"
        if self.stopped:
            return "budget_exceeded"
        return "failed"

    def last_tests_markdown(self) -> str:
        last = self.last_tested
        return last.tests.markdown if last and last.tests else "No tests were run."

    def to_summary(self, budget: Budget, *, run_id: str | None, summary_path: Path | None = None) -> RunSummary:
        """The run's summary."""
        last = self.last_tested
        return RunSummary(
            status=self.status,
            attempts=len(self.attempts),
            tests=TestCounts(passed=last.passed if last else 0, failed=last.failed if last else 0),
            pr=self.pr,
            cost_usd=round(budget.cost_usd, 6),
            tokens=budget.tokens,
            usage={
                name: ProviderTally(
                    input_tokens=u.input_tokens,
                    output_tokens=u.output_tokens,
                    cost_usd=round(u.cost_usd, 6),
                    calls=u.calls,
                    cached_calls=u.cached_calls,
                    replayed_calls=u.replayed_calls,
                    list_cost_usd=round(u.list_cost_usd, 6),
                )
                for name, u in sorted(budget.by_provider.items())
            },
            run_id=run_id,
            key=self.key,
            model=self.models_used,
            changed_files=list(self.changed_files),
            patch=self.patch_path,
            stopped=self.stopped,
            refused=self.refused,
            history=[
                AttemptLine(
                    attempt=a.number,
                    written=list(a.written),
                    problems=list(a.problems),
                    tested=a.tests is not None,
                    passed=a.passed,
                    failed=a.failed,
                    notes=list(a.notes),
                )
                for a in self.attempts
            ],
            summary_path=str(summary_path) if summary_path else None,
            evidence=self.evidence,
        )


def pr_title(request: str) -> str:
    """A pull request title from the request's first line."""
    first = request.strip().splitlines()[0] if request.strip() else "vibe change"
    return first if len(first) <= 72 else first[:69].rstrip() + "..."


def pr_summary(outcome: PipelineOutcome) -> str:
    """A short description of the change for the pull request body."""
    files = "\n".join(f"- `{path}`" for path in outcome.changed_files) or "- (no files)"
    rounds = len(outcome.attempts)
    if outcome.status == "needs_review":
        verdict = "the tests pass, but tests that passed before the change are gone: this needs review"
    else:
        verdict = "the tests pass" if outcome.tests_ok else "the tests still fail"
    text = f"Changed files:\n{files}\n\nAfter {rounds} attempt(s) of {outcome.max_attempts}, {verdict}."
    evidence = outcome.evidence
    if evidence is not None and evidence.baseline:
        text += "\n\n" + evidence.markdown().rstrip()
    return text


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _pr_line(pr: PublishedPR | None) -> str:
    if pr is None:
        return "No pull request was opened."
    if pr.url:
        return f"[{pr.url}]({pr.url}) on branch `{pr.branch}`"
    return f"Local mode: branch `{pr.branch}` pushed; description in `{pr.description_path}`"


def render_run_markdown(outcome: PipelineOutcome, budget: Budget) -> str:
    """The final markdown artifact: outcome, attempts, test table, PR link, tokens and cost per provider."""
    lines = [
        f"# feature_pipeline: {outcome.status}",
        "",
        f"**Request:** {outcome.request.strip()}",
        "",
        f"**Model:** {outcome.models_used}  ",
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
    evidence = outcome.evidence
    if evidence is not None and evidence.baseline:
        lines += ["", evidence.markdown().strip()]
    lines += ["", "## Tests (last run)", "", outcome.last_tests_markdown().strip(), "", "## Pull request", ""]
    lines.append(_pr_line(outcome.pr))
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
