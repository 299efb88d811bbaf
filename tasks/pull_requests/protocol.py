"""The small interface publishing needs from a pull-request host, and the frozen values that cross it.

`GitHubClient` (in `github.py`, the only module that imports PyGithub) implements it; no PyGithub type crosses
this boundary, so the orchestration in `publish.py` depends on these names only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class RepositoryInfo:
    """What publishing needs to know about a hosted repository (cached by the adapter).

    Attributes:
        full_name: `owner/name`.
        default_branch: the branch pull requests target when no base is given.
        html_url: the repository's web page.
    """

    full_name: str
    default_branch: str
    html_url: str


@dataclass(frozen=True)
class PullRequestInfo:
    """A pull request as the host reported it.

    Attributes:
        number: the PR number.
        url: the PR's web page.
        title: its title.
        body: its description (empty string when none).
        draft: whether it is a draft.
        labels: the names of its labels.
        base: the branch it targets.
        head: its head branch name.
        node_id: the GraphQL id (draft conversion uses it).
    """

    number: int
    url: str
    title: str
    body: str
    draft: bool
    labels: tuple[str, ...]
    base: str
    head: str
    node_id: str


class PullRequestHost(Protocol):
    """A place where pull requests live (GitHub or GitHub Enterprise through `GitHubClient`).

    Every method raises `vibe.errors.GitHubError` on failure, after the adapter's own retries.
    """

    @property
    def web_url(self) -> str:
        """The web root git remotes of this host use (`https://github.com/`), for scoping push credentials."""
        ...

    def repository(self, full_name: str) -> RepositoryInfo:
        """The repository's metadata (cached)."""
        ...

    def find_open_pull_requests(self, full_name: str, head: str) -> list[PullRequestInfo]:
        """Open pull requests whose head is `head` (`owner:branch`), in one request."""
        ...

    def create_pull_request(
        self, full_name: str, *, head: str, base: str, title: str, body: str, draft: bool
    ) -> PullRequestInfo:
        """Open a pull request."""
        ...

    def update_pull_request(
        self, full_name: str, number: int, *, title: str | None = None, body: str | None = None,
        base: str | None = None,
    ) -> PullRequestInfo:
        """Change the given fields of a pull request (one request)."""
        ...

    def add_labels(self, full_name: str, number: int, labels: list[str]) -> None:
        """Add labels to a pull request, keeping the ones it has."""
        ...

    def set_draft(self, pull: PullRequestInfo, draft: bool) -> None:
        """Convert a pull request to a draft, or mark it ready for review."""
        ...
