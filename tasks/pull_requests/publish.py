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

Local mode (no GitHub token and no client given): steps 4 and 6 are replaced by writing the PR description to
`settings.home/pull-requests/...`; the branch is pushed to whatever remote the repository has.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.pull_requests import git_ops
from tasks.pull_requests.body import marker_key, redact, with_marker
from tasks.pull_requests.protocol import PullRequestHost, PullRequestInfo
from tasks.safe_git import UserRepo
from tasks.workspace import ChangeSet
from vibe.errors import GitHubError, InputError
from vibe.settings import Settings

_log = logging.getLogger(__name__)

_BRANCH_PREFIX = "vibe/"
_MAX_SLUG = 60


@dataclass(frozen=True)
class PullRequestResult:
    """The outcome of publishing.

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

    def to_json_dict(self) -> dict[str, Any]:
        """`{"branch", "number", "url", "created"}`, as `vibe pr --json` prints it."""
        return {"branch": self.branch, "number": self.number, "url": self.url, "created": self.created}


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
    return _BRANCH_PREFIX + slug


def _norm(text: str) -> str:
    # GitHub stores bodies with CRLF line ends when edited in the browser.
    return text.replace("\r\n", "\n").strip()


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
    github: PullRequestHost | None = None,
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
        github: the PR host to use; default: a `GitHubClient` from `settings`, or local mode without a token.
        tests_passed: False makes the PR a draft when `settings.pr_draft_on_failure` (the draft policy).

    Returns:
        What happened; `nothing_to_commit` set (and nothing done) when there is nothing to publish.

    Raises:
        InputError: bad input (not a repository, no remote, missing base, unknown owner/name, key collision).
        GitHubError: the remote or GitHub failed (bad credentials, a rejected push, ...).
    """
    title = _validate(title, github_repo)
    key = key.strip() if key and key.strip() else default_key(title)
    branch = branch_for(key)
    if changes is not None and source is not None:
        raise InputError("pass either `changes` (the record of edits) or `source` (a working tree), not both")
    repository = git_ops.open_repo(repo)
    worktree = git_ops.open_repo(source) if source is not None else repository
    if git_ops.common_dir(worktree) != git_ops.common_dir(repository):
        raise InputError(f"{source} is not a working tree of the repository at {repo}")
    remote = git_ops.find_remote(repository)

    # An empty GITHUB_TOKEN (an unset secret exported as "") means local mode, not a doomed 401.
    if github is None and settings.github_token is not None and settings.github_token.get_secret_value():
        from tasks.pull_requests.github import GitHubClient  # PyGithub is only loaded when GitHub is used

        own = GitHubClient.from_settings(settings)
        try:
            return _publish(repository, worktree, changes, remote, own, title=title, body=body, key=key,
                            branch=branch, base=base, draft=draft, labels=labels, github_repo=github_repo,
                            settings=settings, tests_passed=tests_passed)
        finally:
            own.close()
    return _publish(repository, worktree, changes, remote, github, title=title, body=body, key=key, branch=branch,
                    base=base, draft=draft, labels=labels, github_repo=github_repo, settings=settings,
                    tests_passed=tests_passed)


def _publish(
    repository: UserRepo,
    worktree: UserRepo,
    changes: ChangeSet | None,
    remote: git_ops.Remote,
    host: PullRequestHost | None,
    *,
    title: str,
    body: str,
    key: str,
    branch: str,
    base: str | None,
    draft: bool,
    labels: Sequence[str],
    github_repo: str | None,
    settings: Settings,
    tests_passed: bool | None,
) -> PullRequestResult:
    secrets = settings.secret_values()
    full_name: str | None = None
    auth: git_ops.GitAuth | None = None
    if host is not None:
        full_name = github_repo or git_ops.github_repo_from_url(remote.url)
        if full_name is None:
            raise InputError(
                f"cannot tell the GitHub repository from the URL of {remote.name} ({remote.display_url}); "
                "pass --github-repo OWNER/NAME"
            )
        token = settings.github_token
        same_host = git_ops.strip_userinfo(remote.url).startswith(host.web_url)
        if token is not None and token.get_secret_value() and same_host:
            auth = git_ops.GitAuth(web_url=host.web_url, token=token)

    snap = git_ops.snapshot_changes(repository, changes) if changes is not None else git_ops.snapshot(worktree)
    explicit_base = base
    if base is None and host is not None and full_name is not None:
        base = host.repository(full_name).default_branch
    refs = git_ops.ls_remote(
        repository, remote, [b for b in (base, branch) if b], with_default=base is None, auth=auth, secrets=secrets
    )
    if base is None:
        base = refs.default_branch
        if base is None:
            raise InputError(f"cannot tell the default branch of {remote.name} ({remote.display_url}); pass --base")
        if base not in refs.heads:
            refs = git_ops.ls_remote(repository, remote, [base, branch], with_default=False, auth=auth,
                                     secrets=secrets)
    base_sha = refs.heads.get(base)
    if base_sha is None:
        raise InputError(f"the base branch {base!r} does not exist on {remote.name} ({remote.display_url})")

    if not snap.dirty:
        if not git_ops.has_commit(repository, base_sha):
            git_ops.fetch(repository, remote, base, auth=auth, secrets=secrets)
        if git_ops.is_ancestor(repository, snap.head, base_sha):
            _log.info("nothing to commit: %s has no changes that %s lacks", worktree.top, base)
            return PullRequestResult(branch=branch, number=None, url=None, created=False, local=host is None,
                                     description_path=None, key=key, base=base, nothing_to_commit=True)

    existing: PullRequestInfo | None = None
    if host is not None and full_name is not None:
        existing = _find_pull(host, full_name, branch, key)

    commit = git_ops.commit_snapshot(repository, snap, f"{title}\n\nVibe-Key: {key}\n")
    remote_sha = refs.heads.get(branch)
    if remote_sha is not None and not git_ops.has_commit(repository, remote_sha):
        git_ops.fetch(repository, remote, branch, auth=auth, secrets=secrets)
    pushed = remote_sha is None or not git_ops.same_content(repository, remote_sha, commit, snap)
    if pushed:
        git_ops.push_with_lease(repository, remote, commit, branch, expected=remote_sha, auth=auth, secrets=secrets)
        _log.info("pushed %s to %s", branch, remote.name)
    else:
        _log.info("%s on %s already holds this change; not pushed", branch, remote.name)

    full_body = with_marker(redact(body, secrets), key)
    if host is None or full_name is None:
        path = _write_description(settings, repository, remote, branch=branch, base=base, title=title, body=full_body)
        return PullRequestResult(branch=branch, number=None, url=None, created=False, local=True,
                                 description_path=path, key=key, base=base, pushed=pushed)

    wanted_draft = draft or (tests_passed is False and settings.pr_draft_on_failure)
    wanted_labels = list(dict.fromkeys([*settings.pr_labels, *labels]))
    created = False
    if existing is None:
        try:
            pull = host.create_pull_request(full_name, head=branch, base=base, title=title, body=full_body,
                                            draft=wanted_draft)
            created = True
        except GitHubError as exc:
            # A retried POST whose first attempt did succeed: adopt the PR it made.
            if exc.status != 422 or "already exists" not in str(exc).lower():
                raise
            existing = _find_pull(host, full_name, branch, key)
            if existing is None:
                raise
    if existing is not None:
        pull = _update_pull(host, full_name, existing, title=title, body=full_body,
                            base=explicit_base, draft=wanted_draft)
    missing = [label for label in wanted_labels if label not in pull.labels]
    if missing:
        host.add_labels(full_name, pull.number, missing)
    _log.info("%s pull request #%d: %s", "opened" if created else "updated", pull.number, pull.url)
    return PullRequestResult(branch=branch, number=pull.number, url=pull.url, created=created, local=False,
                             description_path=None, key=key, base=base, pushed=pushed)


def _find_pull(host: PullRequestHost, full_name: str, branch: str, key: str) -> PullRequestInfo | None:
    owner = full_name.split("/", 1)[0]
    for pull in host.find_open_pull_requests(full_name, f"{owner}:{branch}"):
        found = marker_key(pull.body)
        if found is not None and found != key:
            raise InputError(
                f"pull request #{pull.number} on branch {branch} belongs to another key ({found!r}); "
                "pass a different --key"
            )
        return pull  # the branch is this key's: adopt its open PR even if someone removed the marker
    return None


def _update_pull(
    host: PullRequestHost, full_name: str, pull: PullRequestInfo, *, title: str, body: str, base: str | None,
    draft: bool,
) -> PullRequestInfo:
    changes: dict[str, str] = {}
    if pull.title != title:
        changes["title"] = title
    if _norm(pull.body) != _norm(body):
        changes["body"] = body
    if base is not None and pull.base != base:
        changes["base"] = base
    if changes:
        pull = host.update_pull_request(full_name, pull.number, **changes)
    if pull.draft != draft:
        host.set_draft(pull, draft)
    return pull


def _write_description(
    settings: Settings, repository: UserRepo, remote: git_ops.Remote, *, branch: str, base: str, title: str, body: str
) -> Path:
    root = git_ops.common_dir(repository)
    name = repository.top.name
    folder = settings.home / "pull-requests" / f"{name}-{hashlib.sha256(str(root).encode()).hexdigest()[:8]}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{branch.removeprefix(_BRANCH_PREFIX)}.md"
    text = (
        f"# {title}\n\n"
        f"Branch `{branch}` is pushed to `{remote.name}` ({remote.display_url}); base `{base}`.\n"
        "No GitHub token is configured (GITHUB_TOKEN), so no pull request was opened: "
        "open one from this description.\n\n---\n\n"
        f"{body}\n"
    )
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)  # readers never see a half-written description
    return path


def describe(result: PullRequestResult) -> str:
    """A one-line human summary of `result` for the CLI and artifacts."""
    if result.nothing_to_commit:
        return f"nothing to commit: no changes to publish on {result.branch} against {result.base}"
    if result.local:
        return (f"local mode (no GITHUB_TOKEN): pushed branch {result.branch}; "
                f"PR description written to {result.description_path}")
    verb = "opened" if result.created else "updated"
    return f"{verb} pull request #{result.number}: {result.url} (branch {result.branch})"
