"""The `open_pull_request` flow: publish a repository's changes as the single pull request of a key.

Orchestration only: settings are read here (a flow run is an entry point, locally or on a worker), the work
is `tasks.pull_requests.publish_pull_request`, and inside a flow run the outcome is shown as a markdown artifact:
the PR link, or, in local mode (no GITHUB_TOKEN), the PR description that was written to a file. Called through
`.fn` (`vibe pr` without a Prefect API) it is the plain publish.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.context import FlowRunContext

from tasks.pull_requests.prefect_tasks import publish_pull_request_task
from tasks.pull_requests.publish import PullRequestResult, describe
from tasks.step import artifact_key, call_step
from vibe.settings import current_settings


def _artifact_markdown(result: PullRequestResult) -> str:
    if result.nothing_to_commit:
        return f"**Nothing to commit**: no changes to publish on `{result.branch}` against `{result.base}`."
    if result.local and result.description_path is not None:
        description = result.description_path.read_text(encoding="utf-8")
        return (
            f"**Local mode**: branch `{result.branch}` pushed; no GitHub token, so no pull request was opened.\n"
            f"The description below is also in `{result.description_path}`.\n\n---\n\n{description}"
        )
    verb = "Opened" if result.created else "Updated"
    return (
        f"**{verb} pull request [#{result.number}]({result.url})**\n\n"
        f"Branch `{result.branch}` into `{result.base}`; "
        f"{'pushed a new commit' if result.pushed else 'the branch already held this change'}."
    )


@flow(name="open_pull_request")
def open_pull_request(
    repo_path: str,
    title: str,
    body: str = "",
    key: str | None = None,
    base: str | None = None,
    draft: bool = False,
    github_repo: str | None = None,
) -> PullRequestResult:
    """Commit the repository's uncommitted changes on the key's branch, push, and open or update its PR.

    Args:
        repo_path: the repository's working tree.
        title: the PR title.
        body: the PR description (the hidden marker is appended).
        key: the request's stable key (default: a hash of the title); the same key updates the same PR.
        base: the target branch (default: the repository's default branch).
        draft: open as a draft.
        github_repo: `owner/name` (default: from the `origin` URL).

    Returns:
        What was published (`branch`, `number`, `url`, `created`, `local`, `description_path`,
        `nothing_to_commit`, ...); `to_json_dict()` is what `vibe pr --json` prints.
    """
    settings = current_settings()
    result = call_step(
        publish_pull_request_task, Path(repo_path), title=title, body=body, key=key, base=base, draft=draft,
        github_repo=github_repo, settings=settings,
    )  # fmt: skip
    if FlowRunContext.get() is not None:
        create_markdown_artifact(
            key=artifact_key("pull-request", result.branch), markdown=_artifact_markdown(result),
            description=describe(result),
        )
    return result
