"""The end of the pipeline's work: the change as a patch file, and its pull request.

Both come from the run's record of validated edits (`run.changes`), never from a working tree.
"""

from __future__ import annotations

from tasks.pipeline.outcome import PublishedPR, pr_summary, pr_title
from tasks.pipeline.run import PipelineRun
from tasks.pull_requests.body import render_pr_body
from tasks.pull_requests.prefect_tasks import publish_pull_request_task
from tasks.step import call_step
from tasks.workspace import build_change_tree, change_patch

__all__ = ["publish_changes", "write_patch"]


def write_patch(run: PipelineRun) -> None:
    """Write the change as `<run dir>/changes.patch` and record it and its files in `run.outcome`."""
    changes = run.changes
    tree = build_change_tree(run.repo, changes.base_commit, changes.changes)
    patch = change_patch(run.repo, changes.base_commit, tree)
    run.outcome.changed_files = _patched_files(patch)
    run.journal.directory.mkdir(parents=True, exist_ok=True)
    patch_path = run.journal.directory / "changes.patch"
    patch_path.write_text(patch, encoding="utf-8")
    run.outcome.patch_path = str(patch_path)


def publish_changes(run: PipelineRun, *, base: str | None, github_repo: str | None) -> PublishedPR:
    """Open or update the run's pull request (once: a journaled one is returned as it is).

    The PR is a draft when the tests fail and `settings.pr_draft_on_failure` is set (the policy lives in
    `publish_pull_request`). No task retries: the GitHub adapter retries its own calls.
    """
    persisted = run.journal.get("pr", PublishedPR)
    if persisted is not None:
        return persisted
    outcome, budget = run.outcome, run.budget
    body = render_pr_body(
        request=run.request,
        summary=pr_summary(outcome),
        tests_markdown=outcome.last_tests_markdown(),
        model=outcome.models_used,
        tokens=budget.tokens,
        cost_usd=budget.cost_usd,
        key=outcome.key,
    )
    result = call_step(
        publish_pull_request_task,
        run.repo,
        title=pr_title(run.request),
        body=body,
        key=outcome.key,
        base=base,
        github_repo=github_repo,
        changes=run.changes,
        settings=run.settings,
        # Tests that passed before and are gone make it a draft even when the request asked for it: review.
        tests_passed=outcome.tests_ok and not outcome.needs_review,
    )
    pr = PublishedPR.of(result)
    run.journal.put("pr", pr)
    return pr


def _patched_files(patch: str) -> list[str]:
    # `diff --git a/<path> b/<path>` headers of the record's own patch (no renames: both names are the same).
    prefix = "diff --git a/"
    return sorted({line[len(prefix):].split(" b/", 1)[0] for line in patch.splitlines() if line.startswith(prefix)})
