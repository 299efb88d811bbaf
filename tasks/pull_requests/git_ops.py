"""Git operations for publishing: snapshot or change record, commit, remote lookups and the lease-protected push.

Every command goes through `tasks.safe_git` (explicit git dir, fixed safe overrides, minimal environment); no
GitPython, whose subprocesses inherit this process's whole environment (API keys, `REDIS_URL`).

How the user's repository is treated: nothing in it changes except the objects database and the
remote-tracking ref of the PR branch. What is published is either the pipeline's record of validated edits
(`snapshot_changes`: a tree built from a `ChangeSet` with plumbing, no working tree read) or, for `vibe pr`, the
user's own working tree (`snapshot`: tracked changes, deletions and untracked files that are not ignored, read
through a temporary index file). Either is committed with `commit-tree` on top of its base. The user's
checked-out branch, index and files stay as they were, and no local branch is created. No local hook runs
(`core.hooksPath` is pointed at nothing for every command); server hooks on the remote do.

The GitHub token reaches git only through the environment of the fetch/ls-remote/push command that needs it
(`GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n`, an `http.<host>.extraheader`), scoped to the
GitHub host: never in `.git/config`, a remote URL or a command line.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr

from tasks.safe_git import UserRepo, find_user_repo
from tasks.workspace import ChangeSet, build_change_tree
from vibe.errors import GitHubError, InputError
from vibe.redact import redact

_FALLBACK_NAME = "vibe-pipelines"
_FALLBACK_EMAIL = "vibe-pipelines@users.noreply.github.com"


@dataclass(frozen=True)
class GitAuth:
    """A token to present to one web host over HTTPS, as an `Authorization` extra header.

    Attributes:
        web_url: the URL prefix the header is scoped to (`https://github.com/`).
        token: the token.
    """

    web_url: str
    token: SecretStr = field(repr=False)

    def env(self) -> dict[str, str]:
        """Environment variables that hand git the header for one command (git >= 2.31)."""
        basic = base64.b64encode(f"x-access-token:{self.token.get_secret_value()}".encode()).decode()
        key = f"http.{self.web_url}.extraheader"
        # The empty value first resets headers configured elsewhere (actions/checkout writes one), so the
        # server never receives two Authorization headers.
        # No hook of the repository runs in a command that carries the token (pre-push, reference-transaction).
        return {
            "GIT_CONFIG_COUNT": "3",
            "GIT_CONFIG_KEY_0": key,
            "GIT_CONFIG_VALUE_0": "",
            "GIT_CONFIG_KEY_1": key,
            "GIT_CONFIG_VALUE_1": f"AUTHORIZATION: basic {basic}",
            "GIT_CONFIG_KEY_2": "core.hooksPath",
            "GIT_CONFIG_VALUE_2": os.devnull,
        }


@dataclass(frozen=True)
class Remote:
    """The git remote publishing pushes to.

    Attributes:
        name: its name (`origin`).
        url: its fetch URL as configured.
    """

    name: str
    url: str

    @property
    def display_url(self) -> str:
        """The URL without any user or password in it, safe to print."""
        return strip_userinfo(self.url)


@dataclass(frozen=True)
class Snapshot:
    """The state of a working tree, recorded as a tree object without touching the user's index.

    Attributes:
        head: the commit checked out.
        tree: the tree of the working tree as it is (tracked changes and untracked, non-ignored files).
        dirty: whether `tree` differs from HEAD's tree (there are uncommitted changes).
    """

    head: str
    tree: str
    dirty: bool


@dataclass(frozen=True)
class RemoteRefs:
    """What `ls-remote` reported.

    Attributes:
        heads: branch name -> commit, for the branches asked about that exist.
        default_branch: the branch the remote's HEAD points to, when asked and known.
    """

    heads: dict[str, str]
    default_branch: str | None


def strip_userinfo(url: str) -> str:
    """`url` without credentials (`https://user:pw@host/x` -> `https://host/x`); other forms unchanged."""
    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return url


def open_repo(path: Path) -> UserRepo:
    """The git repository whose working tree is at or above `path` (the user's own, trusted checkout).

    Raises:
        InputError: `path` is missing, not inside a git working tree, or a bare repository.
    """
    return find_user_repo(Path(path))


def common_dir(repo: UserRepo) -> Path:
    """The repository's shared git directory (the same for all its linked worktrees)."""
    return repo.common_dir


def find_remote(repo: UserRepo) -> Remote:
    """`origin`, or the only remote there is.

    Raises:
        InputError: no remote, or several and none is `origin`.
    """
    names = repo.git().out("remote").split()
    if not names:
        raise InputError(f"{repo.top} has no git remote to push to; add one with `git remote add origin URL`")
    name = "origin" if "origin" in names else (names[0] if len(names) == 1 else None)
    if name is None:
        raise InputError(f"{repo.top} has several remotes ({', '.join(names)}) and none is `origin`")
    url = repo.git().out("config", "--get", f"remote.{name}.url")
    return Remote(name=name, url=url)


def github_repo_from_url(url: str) -> str | None:
    """`owner/name` from a GitHub-style remote URL (https, ssh, scp-like `git@host:owner/name.git`), or None."""
    url = url.strip()
    scp = re.fullmatch(r"[\w.-]+@[\w.-]+:(?!/)(.+)", url)
    path = scp.group(1) if scp else (urlsplit(url).path if "://" in url else "")
    parts = [p for p in path.strip("/").removesuffix(".git").split("/") if p]
    if len(parts) < 2:
        return None
    owner, name = parts[-2], parts[-1]
    if not re.fullmatch(r"[\w.-]+", owner) or not re.fullmatch(r"[\w.-]+", name):
        return None
    return f"{owner}/{name}"


def _identity_env(repo: UserRepo) -> dict[str, str]:
    # A commit needs an identity; machines running the pipeline often have none configured.
    if repo.git().run("var", "GIT_COMMITTER_IDENT", check=False).returncode == 0:
        return {}
    return {
        "GIT_AUTHOR_NAME": _FALLBACK_NAME,
        "GIT_AUTHOR_EMAIL": _FALLBACK_EMAIL,
        "GIT_COMMITTER_NAME": _FALLBACK_NAME,
        "GIT_COMMITTER_EMAIL": _FALLBACK_EMAIL,
    }


def _head(repo: UserRepo) -> tuple[str, str]:
    proc = repo.git().run("rev-parse", "--quiet", "HEAD^{commit}", "HEAD^{tree}", check=False)
    lines = proc.stdout.decode().split()
    if proc.returncode != 0 or len(lines) != 2:
        raise InputError(f"{repo.top} has no commit yet; commit once before publishing")
    return lines[0], lines[1]


def snapshot(repo: UserRepo) -> Snapshot:
    """Record `repo`'s working tree as a tree object through a temporary index (the user's index is untouched).

    For the user's own checkout only (`vibe pr`): git reads that tree with the repository's own attributes and
    filters, which is right for a tree the user owns and wrong for one untrusted code touched (publish a
    `ChangeSet` with `snapshot_changes` instead).

    Raises:
        InputError: the repository has no commit yet.
    """
    head, head_tree = _head(repo)
    real_index = repo.git_dir / "index"
    workdir = tempfile.mkdtemp(prefix="vibe-index-")
    try:
        index = Path(workdir) / "index"
        git = repo.git(work_tree=True, index_file=index)
        if real_index.is_file():
            # Starting from the real index reuses its stat data, so unchanged files are not re-hashed. copy2 keeps
            # the index's mtime: git's racy-entry check compares it with the files' mtimes, and a fresh mtime
            # would hide a same-size edit made in the second the index was written.
            shutil.copy2(real_index, index)
        else:
            git.run("read-tree", "HEAD")
        git.run("add", "--all")
        tree = git.out("write-tree")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return Snapshot(head=head, tree=tree, dirty=tree != head_tree)


def snapshot_changes(repo: UserRepo, changes: ChangeSet) -> Snapshot:
    """The record of validated edits as a snapshot on top of its base commit; no working tree is read.

    Raises:
        InputError: the base commit is not in the repository, or a path of the record is invalid.
    """
    tree = build_change_tree(repo.top, changes.base_commit, changes.changes)
    head = repo.git().out("rev-parse", "--verify", f"{changes.base_commit}^{{commit}}")
    base_tree = repo.git().out("rev-parse", f"{head}^{{tree}}")
    return Snapshot(head=head, tree=tree, dirty=tree != base_tree)


def commit_snapshot(repo: UserRepo, snap: Snapshot, message: str) -> str:
    """The commit holding `snap`: a new commit on top of its head when dirty, else the head itself."""
    if not snap.dirty:
        return snap.head
    return repo.git().out("commit-tree", snap.tree, "-p", snap.head, "-m", message, extra_env=_identity_env(repo))


def has_commit(repo: UserRepo, sha: str) -> bool:
    """Whether the commit `sha` is in the local object database."""
    return repo.git().run("cat-file", "-e", f"{sha}^{{commit}}", check=False).returncode == 0


def is_ancestor(repo: UserRepo, ancestor: str, descendant: str) -> bool:
    """Whether `ancestor` is reachable from `descendant` (both must be local)."""
    return repo.git().run("merge-base", "--is-ancestor", ancestor, descendant, check=False).returncode == 0


def same_content(repo: UserRepo, existing: str, wanted: str, snap: Snapshot) -> bool:
    """Whether the remote's `existing` commit already holds what `wanted` would publish (so no push is needed)."""
    if existing == wanted:
        return True
    if not snap.dirty or not has_commit(repo, existing):
        return False
    line = repo.git().out("rev-list", "--parents", "-n", "1", existing).split()
    tree = repo.git().out("rev-parse", f"{existing}^{{tree}}")
    return tree == snap.tree and line[1:] == [snap.head]


def _run_remote(repo: UserRepo, args: list[str], auth: GitAuth | None, secrets: Iterable[str]) -> tuple[int, str, str]:
    # The token is in this one command's environment only; the rest of it is the minimal safe environment.
    proc = repo.git().run(*args, check=False, remote=True, extra_env=auth.env() if auth is not None else None)
    out = proc.stdout.decode(errors="replace").strip()
    err = proc.stderr.decode(errors="replace").strip()
    # The project's one redaction: the secrets, and credentials a user embedded in a remote URL.
    secrets = tuple(secrets)
    return proc.returncode, redact(out, secrets), redact(err, secrets)


def _first_error_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if line.lower().startswith(("fatal:", "error:", "remote:", "!")):
            return line
    return lines[-1] if lines else "no output"


def _remote_fault(action: str, remote: Remote, stderr: str) -> GitHubError:
    lower = stderr.lower()
    detail = _first_error_line(stderr)
    where = f"{remote.name} ({remote.display_url})"
    if any(s in lower for s in ("authentication failed", "could not read username", "terminal prompts disabled",
                                "permission denied", "403")):
        return GitHubError(f"{action} {where}: authentication failed; check GITHUB_TOKEN or your git credentials "
                           f"({detail})", retryable=False)
    if any(s in lower for s in ("does not appear to be a git repository", "repository not found", "not found")):
        return GitHubError(f"{action} {where}: the remote repository does not exist or cannot be read ({detail})",
                           retryable=False)
    if any(s in lower for s in ("could not resolve host", "connection refused", "timed out", "unable to access")):
        return GitHubError(f"{action} {where}: cannot reach the remote ({detail})", retryable=True)
    return GitHubError(f"{action} {where} failed: {detail}", retryable=False)


def ls_remote(
    repo: UserRepo,
    remote: Remote,
    branches: Iterable[str],
    *,
    with_default: bool,
    auth: GitAuth | None,
    secrets: Iterable[str] = (),
) -> RemoteRefs:
    """The commits of `branches` on the remote (absent ones omitted), and its default branch if asked.

    Raises:
        GitHubError: the remote cannot be read.
    """
    wanted = {f"refs/heads/{b}": b for b in branches}
    args = ["ls-remote"]
    if with_default:
        args.append("--symref")
    args.append(remote.name)
    if with_default:
        args.append("HEAD")
    args.extend(wanted)
    status, out, err = _run_remote(repo, args, auth, secrets)
    if status != 0:
        raise _remote_fault("reading", remote, err)
    heads: dict[str, str] = {}
    default: str | None = None
    head_sha: str | None = None
    for line in out.splitlines():
        if line.startswith("ref: ") and line.endswith("\tHEAD"):
            target = line[len("ref: "):].split("\t")[0]
            default = target.removeprefix("refs/heads/")
            continue
        sha, _, ref = line.partition("\t")
        if ref == "HEAD":
            head_sha = sha
        elif ref in wanted:
            heads[wanted[ref]] = sha
    if default is not None and head_sha is not None:
        heads.setdefault(default, head_sha)  # HEAD's commit is the default branch's: no second round trip
    return RemoteRefs(heads=heads, default_branch=default)


def fetch(repo: UserRepo, remote: Remote, branch: str, *, auth: GitAuth | None, secrets: Iterable[str] = ()) -> None:
    """Fetch one branch into its remote-tracking ref.

    Raises:
        GitHubError: the fetch failed.
    """
    refspec = f"+refs/heads/{branch}:refs/remotes/{remote.name}/{branch}"
    status, _, err = _run_remote(repo, ["fetch", "--no-tags", remote.name, refspec], auth, secrets)
    if status != 0:
        raise _remote_fault(f"fetching {branch} from", remote, err)


def push_with_lease(
    repo: UserRepo,
    remote: Remote,
    commit: str,
    branch: str,
    *,
    expected: str | None,
    auth: GitAuth | None,
    secrets: Iterable[str] = (),
) -> None:
    """Point the remote's `branch` at `commit`, only if it still is at `expected` (None: must not exist).

    Raises:
        GitHubError: the push was rejected (lease, non-fast-forward, a hook) or failed.
    """
    ref = f"refs/heads/{branch}"
    args = ["push", "--porcelain", f"--force-with-lease={ref}:{expected or ''}"]
    if auth is not None:
        args.append("--no-verify")  # no local hook runs with the token in its environment
    args.extend([remote.name, f"{commit}:{ref}"])
    status, out, err = _run_remote(repo, args, auth, secrets)
    if status == 0:
        return
    text = f"{out}\n{err}"
    lower = text.lower()
    where = f"{remote.name} ({remote.display_url})"
    if "stale info" in lower:
        raise GitHubError(
            f"push of {branch} to {where} was rejected: the branch changed on the remote while publishing "
            "(lease failed); run again to rebuild it on the new state",
            retryable=True,
        )
    if "non-fast-forward" in lower or "fetch first" in lower or "denynonfastforwards" in lower:
        raise GitHubError(
            f"push of {branch} to {where} was rejected as a non-fast-forward update; the remote forbids "
            f"rewriting branches (receive.denyNonFastForwards) or protects {branch}",
            retryable=False,
        )
    if "hook declined" in lower or "[remote rejected]" in lower:
        remote_lines = [line.removeprefix("remote:").strip() for line in err.splitlines() if line.startswith("remote:")]
        reason = "; ".join(line for line in remote_lines if line) or _first_error_line(text)
        raise GitHubError(f"push of {branch} to {where} was rejected by the remote: {reason}", retryable=False)
    raise _remote_fault(f"pushing {branch} to", remote, err or out)

