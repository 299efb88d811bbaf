"""The one Prefect task for publishing: `publish_pull_request_task`, a thin wrapper over `publish_pull_request`.

Declared with `tasks.step.step` (no cache, no persisted result, the one retry policy); flows call it with
`tasks.step.call_step`. No task retries: GitHub API faults are retried inside `GitHubClient` (the one retry
layer), and a failed push is not retryable by repetition (a lease, hook or fast-forward rejection needs a new
run or a fix). The missing cache matters here too: the inputs include `Settings`, whose secrets must never
feed a cache key.

The pipeline passes `changes=ChangeSet(...)` (the record of validated edits) and never a workspace; without
`changes` the repository's own working tree is published (the `open_pull_request` flow, `vibe pr`). The
result is the typed `PullRequestResult`, not a dict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tasks.pull_requests.body import render_pr_body
from tasks.pull_requests.protocol import PullRequestResult
from tasks.pull_requests.publish import publish_pull_request
from tasks.step import step
from tasks.workspace import ChangeSet
from vibe.errors import InputError
from vibe.settings import Settings

__all__ = ["publish_pull_request_task"]


@step("publish-pull-request")  # retries=0: see the module docstring
def publish_pull_request_task(
    repo: Path,
    changes: ChangeSet | None = None,
    *,
    title: str,
    body: str = "",
    body_args: Mapping[str, Any] | None = None,
    key: str | None = None,
    base: str | None = None,
    draft: bool = False,
    labels: Sequence[str] = (),
    github_repo: str | None = None,
    tests_passed: bool | None = None,
    settings: Settings,
) -> PullRequestResult:
    """Commit `changes` (or the repository's working tree) on the key's branch, push it, open or update its PR.

    Args:
        repo: the user's repository.
        changes: the record of validated edits; None publishes the repository's own working tree.
        title: the PR title.
        body: the PR description, as given.
        body_args: instead of `body`, the keyword arguments of `render_pr_body` (its `key` defaults to `key`).
        key: the request's stable key (default: a hash of the title).
        base: the branch the PR targets (default: the repository's default branch).
        draft: open as a draft.
        labels: labels to add besides `settings.pr_labels`.
        github_repo: `owner/name` (default: from the remote's URL).
        tests_passed: False makes the PR a draft when `settings.pr_draft_on_failure` is set.
        settings: the run's settings.

    Returns:
        What happened (`nothing_to_commit` set when there was nothing to publish).

    Raises:
        InputError: both `body` and `body_args`, or bad input (see `publish_pull_request`).
        GitHubError: the remote or GitHub failed.
    """
    if body_args is not None:
        if body:
            raise InputError("pass either a PR `body` or the `body_args` to render one, not both")
        body = render_pr_body(**{"key": key or "", **body_args})
    return publish_pull_request(
        repo, title=title, body=body, key=key, base=base, draft=draft, labels=labels, github_repo=github_repo,
        changes=changes, settings=settings, tests_passed=tests_passed,
    )
