"""The pipeline's typed records round-trip through the run's journal, as a resumed run reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.codegen.generate import Generation
from tasks.pipeline.journal import RunJournal
from tasks.pipeline.outcome import AttemptRecord, PublishedPR
from tasks.testing.report import TestCaseResult, TestReport, TestRun
from vibe.errors import InputError


def test_records_come_back_from_a_reopened_journal_equal_and_typed(tmp_path: Path) -> None:
    generation = Generation(
        reply="calc.py\n```\nX = 1\n```\n", provider="anthropic", model="anthropic:claude-haiku-4-5",
        input_tokens=120, output_tokens=30, cost_usd=None, cached=False,
    )  # fmt: skip
    report = TestReport(passed=5, failed=1, exit_code=1, tests=[TestCaseResult(id="t::a", outcome="failed")])
    tests = TestRun(ok=False, report=report, digest="t::a failed", markdown="| t::a | failed |")
    pr = PublishedPR(
        branch="vibe/k1", number=3, url="https://example.test/pull/3", created=True, local=False,
        description_path=None, base="main", nothing_to_commit=False,
    )  # fmt: skip
    journal = RunJournal(tmp_path, "k1")
    journal.put("generate:1", generation)
    journal.put("tests:1", tests)
    journal.put("pr", pr)

    again = RunJournal(tmp_path, "k1")
    assert again.get("generate:1", Generation) == generation
    replayed = again.get("tests:1", TestRun)
    assert replayed == tests
    assert replayed is not None
    assert AttemptRecord(number=1, written=("calc.py",), tests=replayed).failed == 1
    assert again.get("pr", PublishedPR) == pr
    assert again.get("tests:2", TestRun) is None


def test_an_entry_of_another_shape_asks_for_a_fresh_run(tmp_path: Path) -> None:
    journal = RunJournal(tmp_path, "k1")
    journal.put("pr", {"branch": "vibe/k1"})
    with pytest.raises(InputError, match=r"journal entry 'pr' of run k1 is not a valid PublishedPR.*fresh"):
        journal.get("pr", PublishedPR)
