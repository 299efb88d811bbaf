"""The seams of publishing and the frozen values that cross them.

Two interfaces, one per level:

- `PullRequestHost`: where the pull request of a pushed branch is recorded, bound to one repository for one
  publish. Kinds are classes (`hosts.py`): `GitHubHost` opens or updates the PR on GitHub, `LocalHost` writes
  its description to a file (local mode: no PR numbers, no labels). `publish.py` depends on this name only.
- `PullRequestApi`: the few REST operations `GitHubHost` needs, implemented by `GitHubClient` (in
  `github.py`, the only module that imports PyGithub). No PyGithub type crosses it.

`PublishRequest` is what one publish asks for; `PullRequestResult` is what it did (a frozen pydantic model, so
it round-trips through JSON: `model_dump(mode="json")` / `model_validate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from tasks.pull_requests.git_ops import GitAuth
    from tasks.workspace import ChangeSet

BRANCH_PREFIX = "vibe/"
"""Every PR branch is `vibe/<slug of its key>`."""


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


@dataclass(frozen=True)
class PublishRequest:
    """One publish, resolved: what to commit, where, and the pull request to open or update.

    Attributes:
        title: the PR title and the commit's subject (one line, stripped).
        body: the PR description as published: secrets redacted, the key's hidden marker at its end.
        key: the request's stable key.
        branch: the PR branch of `key` (`vibe/<slug>`).
        base: the base branch asked for; None: the host's default branch, else the remote's HEAD.
        draft: whether the PR should be a draft (asked for, or the draft-on-failure policy).
        labels: the labels the PR should carry (the settings' and the caller's, in order, no repeats).
        github_repo: `owner/name` asked for; None: parsed from the remote's URL.
        tests_passed: the tests' outcome, when known (the draft policy has been applied to `draft`).
        changes: the record of validated edits to publish; None: the working tree `source` is read.
        source: the user's own working tree to publish (None with `changes`, or for the repository's own).
    """

    title: str
    body: str
    key: str
    branch: str
    base: str | None = None
    draft: bool = False
    labels: tuple[str, ...] = ()
    github_repo: str | None = None
    tests_passed: bool | None = None
    changes: ChangeSet | None = None
    source: Path | None = None


class PullRequestResult(BaseModel):
    """The outcome of publishing (frozen; `model_dump(mode="json")` and `model_validate` round-trip it).

    Attributes:
        branch: the PR branch (`vibe/<slug>`).
        number: the PR number; None in local mode or when there was nothing to commit.
        url: the PR's web page; None in local mode or when there was nothing to commit.
        created: whether this run opened the PR (False when it updated an existing one).
        local: whether no GitHub was configured (the description was written to a file instead).
        description_path: the description file in local mode.
        key: the request key the PR belongs to.
        base: the base branch.
        pushed: whether this run moved the remote branch (False when it already held this content).
        nothing_to_commit: the working tree had no changes and HEAD added nothing to the base; nothing was done.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    branch: str
    number: int | None
    url: str | None
    created: bool
    local: bool
    description_path: Path | None
    key: str = ""
    base: str = ""
    pushed: bool = False
    nothing_to_commit: bool = False

    def to_json_dict(self) -> dict[str, str | int | bool | None]:
        """`{"branch", "number", "url", "created"}`, as `vibe pr --json` prints it (the full record: `model_dump`)."""
        return {"branch": self.branch, "number": self.number, "url": self.url, "created": self.created}


class PullRequestHost(Protocol):
    """Where the pull request of a pushed branch is recorded, bound to one repository for one publish.

    Methods raise `vibe.errors.GitHubError` when the host fails (after the adapter's own retries) and
    `vibe.errors.InputError` for a request the host refuses.
    """

    @property
    def local(self) -> bool:
        """True when this host opens no pull request (the description is written to a file instead)."""
        ...

    @property
    def push_auth(self) -> GitAuth | None:
        """The credentials git presents when reading and pushing the remote (None: git's own, if any)."""
        ...

    def default_base(self) -> str | None:
        """The branch a PR targets when no base is asked for; None: the remote's HEAD decides."""
        ...

    def find_pull_request(self, request: PublishRequest) -> PullRequestInfo | None:
        """The open PR of the request's branch, checked to belong to its key (before anything is pushed).

        Raises:
            InputError: the branch's open PR belongs to another key.
        """
        ...

    def open_pull_request(
        self, request: PublishRequest, *, base: str, existing: PullRequestInfo | None, pushed: bool
    ) -> PullRequestResult:
        """Open the PR of the pushed branch, or bring `existing` up to date with the request."""
        ...


class PullRequestApi(Protocol):
    """The REST operations `GitHubHost` needs (GitHub or GitHub Enterprise through `GitHubClient`).

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
