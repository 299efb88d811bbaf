"""Publishing a change as the single pull request of a request key: idempotent and repairable.

One run, in this order (so the cheap checks and the credential check happen before anything is pushed):

1. make the tree object: from the record of validated edits (`changes`, no working tree read), or from the
   user's own working tree (`source`, `vibe pr`; nothing in the checkout changes; see `git_ops`);
2. resolve the base (argument, else GitHub's default branch from cached metadata, else the remote's HEAD) and
   read the remote's base and PR branch with one `ls-remote`;
3. stop with `nothing_to_commit` when there are no changes and HEAD adds nothing to the base;
4. find the open PR of the branch (one GET; bad credentials fail here, before any push);
5. build the commit and push it with a lease, unless the remote branch already holds exactly this content;
6. create the PR, or update only what differs (title/body/base in one PATCH, missing labels in one POST, the
   draft state in one GraphQL mutation).

Re-running with the same key rebuilds the same branch `vibe/<slug>` and updates the same PR. A run that died
after step 5 leaves a pushed branch and no PR; the next run finds the branch up to date and opens the PR.
A closed or merged PR is history: the next run opens a fresh one.

Steps 2, 4 and 6 ask a `PullRequestHost` (`hosts.py`), chosen once at the entry: `GitHubHost`, or, with no
GitHub token and no client given, `LocalHost` (local mode: no default branch of its own, no PR to find, and
step 6 writes the PR description to `settings.home/pull-requests/...`; the branch is pushed to whatever remote
the repository has). The orchestration below never asks which kind it has.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tasks.pull_requests import git_ops
from tasks.pull_requests.body import with_marker
from tasks.pull_requests.hosts import GitHubHost, LocalHost
from tasks.pull_requests.protocol import (
    BRANCH_PREFIX,
    PublishRequest,
    PullRequestApi,
    PullRequestHost,
    PullRequestResult,
)
from tasks.safe_git import UserRepo
from tasks.workspace import ChangeSet
from vibe.errors import InputError
from vibe.redact import redact
from vibe.settings import Settings

__all__ = ["PublishRequest", "PullRequestResult", "branch_for", "default_key", "describe", "publish_pull_request"]

_log = logging.getLogger(__name__)

_MAX_SLUG = 60


@dataclass(frozen=True)
class _Checkout:
    # The user's repository, the tree `source` names (the repository's own by default), the remote pushed to,
    # and the secrets git's output is scrubbed of.
    repository: UserRepo
    worktree: UserRepo
    remote: git_ops.Remote
    secrets: tuple[str, ...]


def default_key(title: str) -> str:
    """The key of a request that did not name one: a short hash of its title."""
    return hashlib.sha256(title.strip().encode()).hexdigest()[:16]


def branch_for(key: str) -> str:
    """The PR branch of `key`: `vibe/<slug>`, with a short hash when the slug had to alter the key.

    The hash keeps keys that slug alike (`Add X` and `add-x`) on different branches.
    """
    slug = re.sub(r"[^a-z0-9._]+", "-", key.lower())
    slug = re.sub(r"\.\.+", ".", slug).strip("-.")[:_MAX_SLUG].strip("-.").removesuffix(".lock")
    if slug != key:
        digest = hashlib.sha256(key.encode()).hexdigest()[:8]
        slug = f"{slug}-{digest}" if slug else digest
    return BRANCH_PREFIX + slug


def _validate(title: str, github_repo: str | None) -> str:
    clean = title.strip()
    if not clean:
        raise InputError("the pull request title is empty; pass --title")
    if "\n" in clean:
        raise InputError("the pull request title must be a single line")
    if github_repo is not None and not re.fullmatch(r"[\w.-]+/[\w.-]+", github_repo):
        raise InputError(f"--github-repo must look like OWNER/NAME, not {github_repo!r}")
    return clean


def publish_pull_request(
    repo: Path,
    *,
    title: str,
    body: str,
    key: str | None = None,
    base: str | None = None,
    draft: bool = False,
    labels: Sequence[str] = (),
    github_repo: str | None = None,
    source: Path | None = None,
    changes: ChangeSet | None = None,
    settings: Settings,
    github: PullRequestApi | None = None,
    tests_passed: bool | None = None,
) -> PullRequestResult:
    """Commit a change on the key's branch, push it with a lease, and open or update its single PR.

    The change is `changes` (the pipeline's record of validated edits: exactly those files, on top of their
    base commit) when given, else the uncommitted state of the user's own working tree `source` (`vibe pr`).

    Args:
        repo: the repository (its remote is pushed to: `origin`, or its only remote).
        title: the PR title (and the commit's subject).
        body: the PR description; the hidden marker of `key` is appended, secrets are redacted.
        key: the request's stable key; default: a hash of the title.
        base: the branch the PR targets; default: GitHub's default branch (local mode: the remote's HEAD).
        draft: open as a draft.
        labels: labels to add, besides `settings.pr_labels` (labels others added are kept).
        github_repo: `owner/name` on GitHub; default: parsed from the remote's URL.
        source: the user's working tree whose changes are published (a linked worktree of `repo`); default:
            `repo`. Read with the repository's own attributes and filters: never pass a tree that untrusted code
            touched (a workspace); pass `changes` instead.
        changes: the record of validated edits to publish instead of a working tree; its base commit is the
            new commit's parent. No working tree is read.
        settings: the run's settings (token, API URL, draft policy, labels, home).
        github: the GitHub API to use (a `GitHubClient`); default: one built from `settings`, or local mode
            (`LocalHost`) without a token.
        tests_passed: False makes the PR a draft when `settings.pr_draft_on_failure` (the draft policy).

    Returns:
        What happened; `nothing_to_commit` set (and nothing done) when there is nothing to publish.

    Raises:
        InputError: bad input (not a repository, no remote, missing base, unknown owner/name, key collision).
        GitHubError: the remote or GitHub failed (bad credentials, a rejected push, ...).
    """
    request = build_request(
        title=title, body=body, key=key, base=base, draft=draft, labels=labels, github_repo=github_repo,
        source=source, changes=changes, settings=settings, tests_passed=tests_passed,
    )
    checkout = _open_checkout(repo, request.source, settings)
    with _host_for(checkout, request, settings, github) as host:
        return _publish(request, checkout, host)


def build_request(
    *,
    title: str,
    body: str,
    key: str | None,
    base: str | None,
    draft: bool,
    labels: Sequence[str],
    github_repo: str | None,
    source: Path | None,
    changes: ChangeSet | None,
    settings: Settings,
    tests_passed: bool | None,
) -> PublishRequest:
    """The resolved request of `publish_pull_request`'s arguments (see there): key, branch, body and policies.

    Raises:
        InputError: an empty or multi-line title, a malformed `github_repo`, or both `changes` and `source`.
    """
    title = _validate(title, github_repo)
    key = key.strip() if key and key.strip() else default_key(title)
    if changes is not None and source is not None:
        raise InputError("pass either `changes` (the record of edits) or `source` (a working tree), not both")
    return PublishRequest(
        title=title,
        body=with_marker(redact(body, settings.secret_values()), key),
        key=key,
        branch=branch_for(key),
        base=base,
        draft=draft or (tests_passed is False and settings.pr_draft_on_failure),
        labels=tuple(dict.fromkeys([*settings.pr_labels, *labels])),
        github_repo=github_repo,
        tests_passed=tests_passed,
        changes=changes,
        source=source,
    )


def _open_checkout(repo: Path, source: Path | None, settings: Settings) -> _Checkout:
    repository = git_ops.open_repo(repo)
    worktree = git_ops.open_repo(source) if source is not None else repository
    if git_ops.common_dir(worktree) != git_ops.common_dir(repository):
        raise InputError(f"{source} is not a working tree of the repository at {repo}")
    remote = git_ops.find_remote(repository)
    return _Checkout(repository, worktree, remote, tuple(settings.secret_values()))


@contextmanager
def _host_for(
    checkout: _Checkout, request: PublishRequest, settings: Settings, api: PullRequestApi | None
) -> Iterator[PullRequestHost]:
    # The one place the kind of host is chosen; a client built here is closed here.
    token = settings.github_token
    if api is not None:
        yield GitHubHost.for_remote(api, checkout.remote, request.github_repo, token)
    elif token is None or not token.get_secret_value():
        # An empty GITHUB_TOKEN (an unset secret exported as "") means local mode, not a doomed 401.
        yield LocalHost(settings.home, checkout.repository, checkout.remote)
    else:
        from tasks.pull_requests.github import GitHubClient  # PyGithub is only loaded when GitHub is used

        own = GitHubClient.from_settings(settings)
        try:
            yield GitHubHost.for_remote(own, checkout.remote, request.github_repo, token)
        finally:
            own.close()


def _publish(request: PublishRequest, checkout: _Checkout, host: PullRequestHost) -> PullRequestResult:
    # Steps 1-6 of the module docstring.
    repository = checkout.repository
    if request.changes is not None:
        snap = git_ops.snapshot_changes(repository, request.changes)
    else:
        snap = git_ops.snapshot(checkout.worktree)
    base, refs = _resolve_base(request, checkout, host)
    if not snap.dirty and _adds_nothing(checkout, snap, base, refs.heads[base], host.push_auth):
        _log.info("nothing to commit: %s has no changes that %s lacks", checkout.worktree.top, base)
        return PullRequestResult(branch=request.branch, number=None, url=None, created=False, local=host.local,
                                 description_path=None, key=request.key, base=base, nothing_to_commit=True)
    existing = host.find_pull_request(request)  # bad credentials fail here, before any push
    pushed = _push(request, checkout, snap, refs.heads.get(request.branch), host.push_auth)
    return host.open_pull_request(request, base=base, existing=existing, pushed=pushed)


def _resolve_base(
    request: PublishRequest, checkout: _Checkout, host: PullRequestHost
) -> tuple[str, git_ops.RemoteRefs]:
    # The base (asked for, else the host's default, else the remote's HEAD) and the remote's base and PR
    # branch, in one ls-remote when the base is known up front.
    repository, remote, auth, secrets = checkout.repository, checkout.remote, host.push_auth, checkout.secrets
    base = request.base if request.base is not None else host.default_base()
    wanted = [b for b in (base, request.branch) if b]
    refs = git_ops.ls_remote(repository, remote, wanted, with_default=base is None, auth=auth, secrets=secrets)
    if base is None:
        base = refs.default_branch
        if base is None:
            raise InputError(f"cannot tell the default branch of {remote.name} ({remote.display_url}); pass --base")
        if base not in refs.heads:
            refs = git_ops.ls_remote(repository, remote, [base, request.branch], with_default=False, auth=auth,
                                     secrets=secrets)
    if base not in refs.heads:
        raise InputError(f"the base branch {base!r} does not exist on {remote.name} ({remote.display_url})")
    return base, refs


def _adds_nothing(
    checkout: _Checkout, snap: git_ops.Snapshot, base: str, base_sha: str, auth: git_ops.GitAuth | None
) -> bool:
    # Whether the (clean) snapshot's head is already in the base, so there is nothing to publish.
    if not git_ops.has_commit(checkout.repository, base_sha):
        git_ops.fetch(checkout.repository, checkout.remote, base, auth=auth, secrets=checkout.secrets)
    return git_ops.is_ancestor(checkout.repository, snap.head, base_sha)


def _push(
    request: PublishRequest,
    checkout: _Checkout,
    snap: git_ops.Snapshot,
    remote_sha: str | None,
    auth: git_ops.GitAuth | None,
) -> bool:
    # Commit the snapshot and push it with a lease on `remote_sha`, unless the branch already holds it.
    repository, remote, secrets = checkout.repository, checkout.remote, checkout.secrets
    commit = git_ops.commit_snapshot(repository, snap, f"{request.title}\n\nVibe-Key: {request.key}\n")
    if remote_sha is not None and not git_ops.has_commit(repository, remote_sha):
        git_ops.fetch(repository, remote, request.branch, auth=auth, secrets=secrets)
    if remote_sha is not None and git_ops.same_content(repository, remote_sha, commit, snap):
        _log.info("%s on %s already holds this change; not pushed", request.branch, remote.name)
        return False
    git_ops.push_with_lease(repository, remote, commit, request.branch, expected=remote_sha, auth=auth,
                            secrets=secrets)
    _log.info("pushed %s to %s", request.branch, remote.name)
    return True


def describe(result: PullRequestResult) -> str:
    """A one-line human summary of `result` for the CLI and artifacts."""
    if result.nothing_to_commit:
        return f"nothing to commit: no changes to publish on {result.branch} against {result.base}"
    if result.local:
        return (f"local mode (no GITHUB_TOKEN): pushed branch {result.branch}; "
                f"PR description written to {result.description_path}")
    verb = "opened" if result.created else "updated"
    return f"{verb} pull request #{result.number}: {result.url} (branch {result.branch})"
