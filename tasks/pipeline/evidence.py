"""Evidence before a pull request: the tests after the change, compared with the tests before it.

SWE-bench judges a change by FAIL_TO_PASS (the tests it is meant to fix) and PASS_TO_PASS (every test that
passed before must still pass). Here the pipeline runs the suite once on the base commit (`baseline_report`,
cached per base commit, environment and command under `VIBE_HOME/baselines/v1/`), keeps the inventory, and
compares every attempt's run with it (`compare`):

| before | after | listed as |
| --- | --- | --- |
| failed or error | passed | `fixed` |
| (absent) | passed | `added` |
| passed | failed or error | `broken` |
| passed, failed or error | skipped | `skipped` |
| passed, failed or error | absent (deleted, renamed, deselected, not collected) | `removed` |
| failed or error | failed or error | `pre_existing` (it failed before the change too) |

A test that failed before counts too: deleting or skipping the failing test is not fixing it (its FAIL_TO_PASS
is gone). An attempt passes only when its suite passes and nothing is `broken`, `skipped` or `removed`, unless
the request asks to remove or change tests (`request_allows_test_changes`); then the removals are still named in the
summary and the pull request body, for review.

Decisions:
- The baseline runs the user's committed code, not the model's, so it may run as trusted code; it still runs on
  a disposable copy (every `run_test_suite` run does), never in the user's tree.
- A suite without per-test results (a custom command) gives no inventory: the comparison is then empty and the
  suite's own verdict stands.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from tasks.testing.report import TestReport
from vibe.fsutil import atomic_write

__all__ = ["TestEvidence", "baseline_path", "compare", "load_baseline", "request_allows_test_changes", "save_baseline"]

_CACHE_NAMESPACE = "v1"
# A verb acting on tests themselves ("remove the obsolete tests", "rename test_old"), not "change f so the
# test passes": only determiners and a few adjectives may stand between.
_FILLER = (
    r"(?:(?:the|a|an|these|those|this|that|all|old|obsolete|outdated|stale|broken|failing|flaky|existing|unit|"
    r"related|legacy|redundant|duplicate|slow|its|their)\s+){0,3}"
)
_TEST = r"test(?:s|_\w*)?\b"
_CHANGE_TESTS = re.compile(
    rf"\b(?:remove|delete|drop|rename|rewrite|replace|update|modify|change|skip|deselect)\w*\s+{_FILLER}{_TEST}"
    rf"|\b{_TEST}\s+(?:\w+\s+){{0,3}}?(?:should|must|can|may|to)\s+be\s+"
    r"(?:removed|deleted|dropped|renamed|rewritten|replaced|updated|changed|skipped)",
    re.IGNORECASE,
)


class TestEvidence(BaseModel):
    """The tests after a change compared with the tests on the base commit (see the module's table).

    Attributes:
        baseline: whether a baseline with per-test results existed (else every list is empty).
        fixed, added, broken, skipped, removed, pre_existing: test ids, sorted.
        allowed_changes: the request asks to remove or change tests, so `skipped`/`removed` do not fail the run.
    """

    __test__ = False
    model_config = ConfigDict(frozen=True)

    baseline: bool = False
    fixed: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    broken: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    pre_existing: tuple[str, ...] = ()
    allowed_changes: bool = False

    @property
    def lost(self) -> tuple[str, ...]:
        """Tests that ran before (passing or failing) and no longer run (skipped or removed)."""
        return (*self.removed, *self.skipped)

    @property
    def ok(self) -> bool:
        """No test that passed before is broken, and none that ran before is lost without the request asking."""
        return not self.broken and (self.allowed_changes or not self.lost)

    def markdown(self) -> str:
        """The comparison as markdown for the summary and the pull request body ("" without a baseline)."""
        if not self.baseline:
            return ""
        lines = ["### Tests compared with the base commit", ""]
        for label, ids in (
            ("Fixed (failed before, pass now)", self.fixed),
            ("Added", self.added),
            ("Broken (passed before, fail now)", self.broken),
            ("Removed (ran before, no longer run)", self.removed),
            ("Skipped (ran before, skipped now)", self.skipped),
            ("Failing before the change too (pre-existing)", self.pre_existing),
        ):
            more = f" and {len(ids) - 30} more" if len(ids) > 30 else ""
            shown = ", ".join(f"`{test}`" for test in ids[:30]) + more
            lines.append(f"- {label}: {shown or 'none'}")
        if self.lost:
            why = "the request asks to change tests" if self.allowed_changes else "needs review"
            lines += ["", f"**Tests that ran before are gone ({why}).**"]
        return "\n".join(lines) + "\n"


def request_allows_test_changes(request: str) -> bool:
    """Whether the request asks to remove, rename, skip or change tests."""
    return bool(_CHANGE_TESTS.search(request))


def _outcomes(report: TestReport) -> dict[str, str]:
    return {test.id: test.outcome for test in report.tests}


def compare(before: TestReport | None, after: TestReport, *, allow_changes: bool = False) -> TestEvidence:
    """The evidence of `after` against the baseline `before` (None or without per-test results: no baseline)."""
    if before is None or not before.tests or (not after.tests and after.total == 0 and not after.ok):
        # Without an inventory on both sides (a custom command; a suite that did not even start) nothing is said.
        return TestEvidence(baseline=bool(before and before.tests), allowed_changes=allow_changes)
    old, new = _outcomes(before), _outcomes(after)
    failing = ("failed", "error")
    return TestEvidence(
        baseline=True,
        fixed=_sorted(t for t, o in new.items() if o == "passed" and old.get(t) in failing),
        added=_sorted(t for t, o in new.items() if o == "passed" and t not in old),
        broken=_sorted(t for t, o in new.items() if o in failing and old.get(t) == "passed"),
        skipped=_sorted(t for t, o in new.items() if o == "skipped" and old.get(t) in ("passed", *failing)),
        removed=_sorted(t for t, o in old.items() if o != "skipped" and t not in new),
        pre_existing=_sorted(t for t, o in new.items() if o in failing and old.get(t) in failing),
        allowed_changes=allow_changes,
    )


def _sorted(ids: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(ids))


def baseline_path(home: Path, *, base_commit: str, environment: str) -> Path:
    """Where the baseline of `base_commit` under `environment` (what changes the outcome: command, runner) lives."""
    digest = hashlib.sha256(f"{base_commit}\0{environment}".encode()).hexdigest()
    return home / "baselines" / _CACHE_NAMESPACE / f"{digest}.json"


def load_baseline(path: Path) -> TestReport | None:
    """The cached baseline report, or None (missing or unreadable: it is run again)."""
    try:
        return TestReport.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, ValidationError):
        return None


def save_baseline(path: Path, report: TestReport) -> None:
    """Cache a baseline report (atomically; a crash leaves the old one or none)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(report.model_dump(mode="json")).encode("utf-8"))
