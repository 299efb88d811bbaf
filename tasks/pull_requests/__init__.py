"""Pull requests: commit a record of edits (or the user's tree) on a key's branch, push it, open or update its PR.

Public API:
    publish_pull_request: the idempotent publish (plain function; see `publish.py` for the sequence).
    ChangeSet: the record of validated edits it publishes (`changes=`), from `tasks.workspace`.
    PublishRequest: one publish, resolved (`build_request` makes it from `publish_pull_request`'s arguments).
    PullRequestResult: its outcome, a frozen model (`model_dump(mode="json")` round-trips it; `to_json_dict()`
        is what `vibe pr --json` prints).
    render_pr_body: the pipeline's PR description, ending with the hidden marker of its key.
    PullRequestHost / GitHubHost / LocalHost: where the PR is recorded (GitHub, or a description file).
    GitHubClient / PullRequestApi: the GitHub REST adapter (PyGithub) and the interface it implements.

The Prefect task wrapper lives in `tasks.pull_requests.prefect_tasks`, so importing this package does not load
Prefect (the CLI calls these functions directly when no Prefect API is configured).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tasks.pull_requests.body import marker, marker_key, render_pr_body
from tasks.pull_requests.hosts import GitHubHost, LocalHost
from tasks.pull_requests.protocol import (
    PublishRequest,
    PullRequestApi,
    PullRequestHost,
    PullRequestInfo,
    PullRequestResult,
    RepositoryInfo,
)
from tasks.pull_requests.publish import branch_for, build_request, default_key, describe, publish_pull_request
from tasks.workspace import ChangeSet

if TYPE_CHECKING:
    from tasks.pull_requests.github import GitHubClient

__all__ = [
    "ChangeSet",
    "GitHubClient",
    "GitHubHost",
    "LocalHost",
    "PublishRequest",
    "PullRequestApi",
    "PullRequestHost",
    "PullRequestInfo",
    "PullRequestResult",
    "RepositoryInfo",
    "branch_for",
    "build_request",
    "default_key",
    "describe",
    "marker",
    "marker_key",
    "publish_pull_request",
    "render_pr_body",
]


def __getattr__(name: str) -> Any:
    # PyGithub loads only when the GitHub adapter is actually asked for.
    if name == "GitHubClient":
        from tasks.pull_requests.github import GitHubClient

        return GitHubClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
