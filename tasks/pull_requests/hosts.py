"""The two kinds of pull-request host: `GitHubHost` (a PR on GitHub) and `LocalHost` (a description file).

Both implement `protocol.PullRequestHost` and are bound to one repository for one publish; `publish.py`
never asks which kind it has. `GitHubHost` holds the PR policy (one PR per key, found by head branch and
marker; only what differs is sent) over the REST seam `PullRequestApi` (`GitHubClient`), which does the
translation and the retries. Neither imports PyGithub.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from pydantic import SecretStr

from tasks.pull_requests import git_ops
from tasks.pull_requests.body import marker_key
from tasks.pull_requests.protocol import (
    BRANCH_PREFIX,
    PublishRequest,
    PullRequestApi,
    PullRequestInfo,
    PullRequestResult,
)
from tasks.safe_git import UserRepo
from vibe.errors import GitHubError, InputError
from vibe.fsutil import atomic_write

_log = logging.getLogger(__name__)


def _norm(text: str) -> str:
    # GitHub stores bodies with CRLF line ends when edited in the browser.
    return text.replace("\r\n", "\n").strip()


class GitHubHost:
    """The pull request of a branch on GitHub (or GitHub Enterprise), through a `PullRequestApi`.

    Args:
        api: the REST adapter (`GitHubClient`).
        full_name: the repository's `owner/name`.
        push_auth: the token git presents to the remote, or None when the remote is not on this host.
    """

    local = False

    def __init__(self, api: PullRequestApi, full_name: str, push_auth: git_ops.GitAuth | None) -> None:
        self._api = api
        self._full_name = full_name
        self._push_auth = push_auth

    @classmethod
    def for_remote(
        cls, api: PullRequestApi, remote: git_ops.Remote, github_repo: str | None, token: SecretStr | None
    ) -> GitHubHost:
        """The host of `remote`'s repository (`github_repo`, else parsed from its URL).

        The token is scoped to the API's web host, and only handed to git when the remote is on that host.

        Raises:
            InputError: the repository cannot be told from the remote's URL and `github_repo` is None.
        """
        full_name = github_repo or git_ops.github_repo_from_url(remote.url)
        if full_name is None:
            raise InputError(
                f"cannot tell the GitHub repository from the URL of {remote.name} ({remote.display_url}); "
                "pass --github-repo OWNER/NAME"
            )
        same_host = git_ops.strip_userinfo(remote.url).startswith(api.web_url)
        auth = None
        if token is not None and token.get_secret_value() and same_host:
            auth = git_ops.GitAuth(web_url=api.web_url, token=token)
        return cls(api, full_name, auth)

    @property
    def push_auth(self) -> git_ops.GitAuth | None:
        """The token for the remote, when it is on this host."""
        return self._push_auth

    def default_base(self) -> str | None:
        """The repository's default branch (cached metadata)."""
        return self._api.repository(self._full_name).default_branch

    def find_pull_request(self, request: PublishRequest) -> PullRequestInfo | None:
        """The open PR of the branch (one GET), refused when its marker names another key."""
        owner = self._full_name.split("/", 1)[0]
        for pull in self._api.find_open_pull_requests(self._full_name, f"{owner}:{request.branch}"):
            found = marker_key(pull.body)
            if found is not None and found != request.key:
                raise InputError(
                    f"pull request #{pull.number} on branch {request.branch} belongs to another key ({found!r}); "
                    "pass a different --key"
                )
            return pull  # the branch is this key's: adopt its open PR even if someone removed the marker
        return None

    def open_pull_request(
        self, request: PublishRequest, *, base: str, existing: PullRequestInfo | None, pushed: bool
    ) -> PullRequestResult:
        """Create the PR, or update what differs of `existing`; then add the labels it lacks."""
        if existing is None:
            pull, created = self._create_or_adopt(request, base)
        else:
            pull, created = self._update(request, existing), False
        missing = [label for label in request.labels if label not in pull.labels]
        if missing:
            self._api.add_labels(self._full_name, pull.number, missing)
        _log.info("%s pull request #%d: %s", "opened" if created else "updated", pull.number, pull.url)
        return PullRequestResult(branch=request.branch, number=pull.number, url=pull.url, created=created,
                                 local=False, description_path=None, key=request.key, base=base, pushed=pushed)

    def _create_or_adopt(self, request: PublishRequest, base: str) -> tuple[PullRequestInfo, bool]:
        try:
            pull = self._api.create_pull_request(self._full_name, head=request.branch, base=base,
                                                 title=request.title, body=request.body, draft=request.draft)
            return pull, True
        except GitHubError as exc:
            # A retried POST whose first attempt did succeed: adopt the PR it made.
            if exc.status != 422 or "already exists" not in str(exc).lower():
                raise
            adopted = self.find_pull_request(request)
            if adopted is None:
                raise
        return self._update(request, adopted), False

    def _update(self, request: PublishRequest, pull: PullRequestInfo) -> PullRequestInfo:
        changes: dict[str, str] = {}
        if pull.title != request.title:
            changes["title"] = request.title
        if _norm(pull.body) != _norm(request.body):
            changes["body"] = request.body
        if request.base is not None and pull.base != request.base:
            changes["base"] = request.base
        if changes:
            pull = self._api.update_pull_request(self._full_name, pull.number, **changes)
        if pull.draft != request.draft:
            self._api.set_draft(pull, request.draft)
        return pull


class LocalHost:
    """Local mode (no GitHub token): the PR description is written to a file; no PR numbers, no labels.

    The file is `<home>/pull-requests/<repo>-<hash of its git dir>/<slug>.md`, rewritten on each run of the
    same key. The branch itself is pushed to whatever remote the repository has, with git's own credentials.

    Args:
        home: the vibe home directory (`settings.home`).
        repository: the user's repository.
        remote: the remote the branch is pushed to (named in the description).
    """

    local = True
    push_auth: git_ops.GitAuth | None = None

    def __init__(self, home: Path, repository: UserRepo, remote: git_ops.Remote) -> None:
        self._home = home
        self._repository = repository
        self._remote = remote

    def default_base(self) -> str | None:
        """None: the remote's HEAD decides."""
        return None

    def find_pull_request(self, request: PublishRequest) -> PullRequestInfo | None:
        """None: there are no pull requests here."""
        return None

    def open_pull_request(
        self, request: PublishRequest, *, base: str, existing: PullRequestInfo | None, pushed: bool
    ) -> PullRequestResult:
        """Write the description file (atomically: readers never see half of it)."""
        path = self.description_path(request.branch)
        path.parent.mkdir(parents=True, exist_ok=True)
        remote = self._remote
        text = (
            f"# {request.title}\n\n"
            f"Branch `{request.branch}` is pushed to `{remote.name}` ({remote.display_url}); base `{base}`.\n"
            "No GitHub token is configured (GITHUB_TOKEN), so no pull request was opened: "
            "open one from this description.\n\n---\n\n"
            f"{request.body}\n"
        )
        atomic_write(path, text)
        return PullRequestResult(branch=request.branch, number=None, url=None, created=False, local=True,
                                 description_path=path, key=request.key, base=base, pushed=pushed)

    def description_path(self, branch: str) -> Path:
        """Where the description of `branch` is written."""
        root = git_ops.common_dir(self._repository)
        digest = hashlib.sha256(str(root).encode()).hexdigest()[:8]
        folder = self._home / "pull-requests" / f"{self._repository.top.name}-{digest}"
        return folder / f"{branch.removeprefix(BRANCH_PREFIX)}.md"
