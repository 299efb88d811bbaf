"""Faithful edits and evidence, end to end (issue 13): the real pipeline (sandboxed pytest, real git, the fake
GitHub) with a model scripted to write its changes the ways real models do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.demo_script import FENCE, FIRST_REPLY
from tests.fakes.github_server import FakeGitHub
from tests.fakes.llm_server import prompt_of
from tests.flows.test_feature_pipeline import CORRECT_REPLY
from tests.tasks.pull_requests.conftest import FULL_NAME

pytestmark = pytest.mark.slow

MEDIAN = (
    "def median(values: Sequence[float]) -> float:\n"
    '    """The middle value of `values` (the mean of the two middle values when the count is even)."""\n'
    "    if not values:\n"
    '        raise ValueError("median() of an empty sequence")\n'
    "    ordered = sorted(values)\n"
    "    middle = len(ordered) // 2\n"
    "    if len(ordered) % 2:\n"
    "        return ordered[middle]\n"
    "    return (ordered[middle - 1] + ordered[middle]) / 2\n"
)
TEST_FILE = CORRECT_REPLY[CORRECT_REPLY.index("tests/test_median.py") :]


def as_dict(summary: Any) -> dict[str, Any]:
    return summary if isinstance(summary, dict) else summary.model_dump(mode="json")


def test_a_diff_fence_after_a_path_line_applies_on_the_first_attempt(run: Any) -> None:
    lines = "".join(f"+{line}\n" for line in (MEDIAN + "\n\n").splitlines())
    reply = (
        "Here is the change as a diff:\n\ntextstats/stats.py\n"
        f"{FENCE}diff\n--- a/textstats/stats.py\n+++ b/textstats/stats.py\n@@ -40,3 +40,14 @@\n"
        f"{lines} def word_counts(text: str) -> dict[str, int]:\n{FENCE}\n\n{TEST_FILE}"
    )
    _, settings = run(lambda body: reply)
    summary = as_dict(run.call(settings, open_pr=False))
    assert summary["status"] == "passed"
    assert summary["attempts"] == 1
    patch = Path(summary["patch"]).read_text()
    assert "+def median" in patch
    # The diff was applied, not written as the file's content.
    assert "+--- a/" not in patch
    assert "+@@ " not in patch


def test_a_quoted_test_for_reference_changes_nothing(run: Any, github: FakeGitHub) -> None:
    quote = (
        "\nFor reference, the existing test next to it in\n`tests/test_stats.py`:\n"
        f"{FENCE}python\ndef test_mean() -> None:\n    assert mean([1, 2, 3, 4]) == 2.5\n{FENCE}\n"
    )
    _, settings = run(lambda body: CORRECT_REPLY + quote)
    summary = as_dict(run.call(settings))
    assert summary["status"] == "passed"
    assert summary["attempts"] == 1
    assert "tests/test_stats.py" not in summary["changed_files"]
    assert summary["tests"]["passed"] == 6  # the 3 tests of tests/test_stats.py still run
    assert any("quotes part of the file" in note for note in summary["history"][0]["notes"])


def _deleting_reply() -> str:
    # The fix, plus `test_word_counts_ignore_case` removed: the suite still passes.
    return CORRECT_REPLY + (
        f"\ntests/test_stats.py\n{FENCE}python\n<<<<<<< SEARCH\n\n\ndef test_word_counts_ignore_case() -> None:\n"
        '    assert word_counts("The cat and the hat") == {"the": 2, "cat": 1, "and": 1, "hat": 1}\n'
        f"=======\n>>>>>>> REPLACE\n{FENCE}\n"
    )


def test_a_reply_that_deletes_a_test_never_passes(run: Any, github: FakeGitHub) -> None:
    llm, settings = run(lambda body: _deleting_reply())
    summary = as_dict(run.call(settings, max_attempts=2))
    assert summary["status"] == "needs_review"
    assert "no longer run" in llm.requests[1].prompt
    assert "test_word_counts_ignore_case" in llm.requests[1].prompt
    assert summary["evidence"]["removed"] == ["tests/test_stats.py::test_word_counts_ignore_case"]
    (pr,) = github.pulls(FULL_NAME)
    assert pr["draft"] is True
    assert "Removed (ran before, no longer run): `tests/test_stats.py::test_word_counts_ignore_case`" in pr["body"]
    assert "Added:" in pr["body"]


RESTORE = (
    f"I put the test back.\n\ntests/test_stats.py\n{FENCE}python\n<<<<<<< SEARCH\n"
    "def test_mean_of_nothing_is_an_error() -> None:\n    with pytest.raises(ValueError):\n        mean([])\n"
    "=======\ndef test_mean_of_nothing_is_an_error() -> None:\n    with pytest.raises(ValueError):\n        mean([])\n"
    '\n\ndef test_word_counts_ignore_case() -> None:\n'
    '    assert word_counts("The cat and the hat") == {"the": 2, "cat": 1, "and": 1, "hat": 1}\n'
    f">>>>>>> REPLACE\n{FENCE}\n"
)


def test_a_deleted_test_goes_back_and_the_restored_run_passes(run: Any) -> None:
    def responder(body: dict[str, Any]) -> str:
        return RESTORE if "no longer run" in prompt_of(body) else _deleting_reply()

    _, settings = run(responder)
    summary = as_dict(run.call(settings, open_pr=False))
    assert summary["status"] == "passed"
    assert summary["attempts"] == 2
    assert summary["evidence"]["removed"] == []
    assert summary["tests"]["passed"] == 6


def test_an_absolute_path_outside_the_repository_goes_back_to_the_model(run: Any) -> None:
    outside = f"/etc/vibe-test-outside.py\n{FENCE}python\nX = 1\n{FENCE}\n"

    def responder(body: dict[str, Any]) -> str:
        return CORRECT_REPLY if "None of your edits were applied" in prompt_of(body) else outside

    llm, settings = run(responder)
    summary = as_dict(run.call(settings, open_pr=False))
    assert summary["status"] == "passed"
    assert summary["attempts"] == 2
    assert "outside the repository" in llm.requests[1].prompt
    assert not Path("/etc/vibe-test-outside.py").exists()


def test_a_stray_file_of_a_failed_attempt_is_not_in_the_patch(run: Any, project: Path) -> None:
    stray = f"\ntextstats/scratch_notes.py\n{FENCE}python\nNOTES = 'trying the even case'\n{FENCE}\n"

    def responder(body: dict[str, Any]) -> str:
        return CORRECT_REPLY if "the tests fail" in prompt_of(body) else FIRST_REPLY + stray

    _, settings = run(responder)
    summary = as_dict(run.call(settings, open_pr=False))
    assert summary["status"] == "passed"
    assert summary["attempts"] == 2
    assert "textstats/scratch_notes.py" not in summary["changed_files"]
    assert "scratch_notes" not in Path(summary["patch"]).read_text()
    assert "textstats/stats.py" in summary["changed_files"]
    assert "tests/test_median.py" in summary["changed_files"]
