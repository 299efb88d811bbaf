"""What the final patch holds: the base plus the edits of the attempts the final state builds on.

Every attempt applies onto the tree the attempts before it left: that is the tree the model is shown (the
feedback carries the current files) and the one its tests ran on. The record (`run.changes`) is the base plus
every edit that applied, so the patch is exactly the tree the final test run passed on. An edit that failed to
apply wrote nothing (apply is all or nothing), and a whole-file block that was not a whole file never reached
the tree (`tasks/codegen/wholefile.py`), so no attempt leaves a damaged file behind.

One thing can still be left over: a file an earlier attempt created that the final attempt did not write
(a stray copy under a wrong path, a helper the fix no longer uses; files holding tests of the final run are
never candidates). `drop_stale_files` removes such files when
the final state does not build on them: it runs the tests once more without them (journaled as
`tests:pruned`), and drops them from the record only when exactly the same tests pass; else they stay (the
final state builds on them) and the patch is the tested tree.
"""

from __future__ import annotations

from collections.abc import Callable

from tasks.pipeline.evidence import compare, request_allows_test_changes
from tasks.pipeline.progress import say
from tasks.pipeline.run import PipelineRun
from tasks.testing.report import TestRun
from tasks.workspace import ChangeSet

__all__ = ["drop_stale_files", "stale_files"]


def stale_files(run: PipelineRun) -> list[str]:
    """Files an earlier attempt created that the final attempt did not write (and that are still in the record)."""
    if not run.outcome.attempts:
        return []
    *earlier, final = run.outcome.attempts
    written = set(final.written)
    # A file holding tests of the final run is kept: the evidence is made of them.
    tested = {test.id.split("::", 1)[0] for test in final.tests.report.tests} if final.tests else set()
    created = {path for attempt in earlier for path in attempt.created}
    return sorted(p for p in created - written - tested if run.changes.changes.get(p) is not None)


def _passing(tests: TestRun) -> set[str]:
    return {t.id for t in tests.report.tests if t.outcome == "passed"}


def drop_stale_files(run: PipelineRun, *, test: Callable[[PipelineRun, str], TestRun]) -> None:
    """Drop the stale files (`stale_files`) from the workspace and the record when the tests pass the same without.

    Args:
        run: the run, whose last attempt passed.
        test: runs the workspace's tests under a journal step name (the pipeline's `_test`).
    """
    stale = stale_files(run)
    final = run.outcome.attempts[-1] if run.outcome.attempts else None
    if not stale or final is None or final.tests is None:
        return
    for path in stale:
        (run.workspace / path).unlink(missing_ok=True)
    pruned = test(run, "tests:pruned")
    evidence = compare(run.baseline, pruned.report, allow_changes=request_allows_test_changes(run.request))
    if pruned.ok and evidence.ok and _passing(pruned) == _passing(final.tests):
        kept = {path: text for path, text in run.changes.changes.items() if path not in stale}
        run.changes = ChangeSet(base_commit=run.changes.base_commit, changes=kept)
        note = "dropped from the patch (created by an earlier attempt; the tests pass the same without): "
        run.outcome.attempts[-1] = final.model_copy(update={"notes": (*final.notes, note + ", ".join(stale))})
        say(note + ", ".join(stale))
        return
    for path in stale:  # the final state builds on them: the patch stays the tested tree
        text = run.changes.changes[path]
        if text is not None:
            (run.workspace / path).parent.mkdir(parents=True, exist_ok=True)
            (run.workspace / path).write_text(text, encoding="utf-8")
