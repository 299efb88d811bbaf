"""Git operations for publishing, with GitPython: snapshot, commit, remote lookups and the lease-protected push.

How the user's repository is treated: nothing in it changes except the objects database and the
remote-tracking ref of the PR branch. The working tree's state (tracked changes, deletions and untracked files
that are not ignored) is read through a temporary index file (`GIT_INDEX_FILE`), written as a tree and committed
with `commit-tree` on top of the working tree's HEAD. The user's checked-out branch, index and files stay as
they were, and no local branch is created. Commit hooks do not run (the commit is made like a bot's); server
hooks on the remote do.

The GitHub token reaches git only through the environment of the fetch/ls-remote/push command that needs it
(`GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n`, an `http.<host>.extraheader`), scoped to the
GitHub host: never in `.git/config`, a remote URL or a command line. Local hooks are skipped on a push that
carries the token (`core.hooksPath` pointed at nothing for that command), so no user code runs with it in its
environment.
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

import git
from pydantic import SecretStr

from vibe.errors import GitHubError, InputError

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


def open_repo(path: Path) -> git.Repo:
    """The git repository whose working tree is at or above `path`.

    Raises:
        InputError: `path` is missing or not inside a git working tree.
    """
    if not path.exists():
        raise InputError(f"{path} does not exist")
    try:
        repo = git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise InputError(f"{path} is not a git repository (run `git init` there, or pass the repository root)") from exc
    if repo.bare:
        raise InputError(f"{path} is a bare repository; pass a working tree")
    return repo


def common_dir(repo: git.Repo) -> Path:
    """The repository's shared git directory (the same for all its linked worktrees)."""
    return Path(repo.common_dir).resolve()


def find_remote(repo: git.Repo) -> Remote:
    """`origin`, or the only remote there is.

    Raises:
        InputError: no remote, or several and none is `origin`.
    """
    names = [remote.name for remote in repo.remotes]
    if not names:
        raise InputError(
            f"{repo.working_tree_dir} has no git remote to push to; add one with `git remote add origin URL`"
        )
    name = "origin" if "origin" in names else (names[0] if len(names) == 1 else None)
    if name is None:
        raise InputError(f"{repo.working_tree_dir} has several remotes ({', '.join(names)}) and none is `origin`")
    url = repo.git.config("--get", f"remote.{name}.url")
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


def _identity_env(repo: git.Repo) -> dict[str, str]:
    # A commit needs an identity; machines running the pipeline often have none configured.
    status, _, _ = repo.git.var("GIT_COMMITTER_IDENT", with_extended_output=True, with_exceptions=False)
    if status == 0:
        return {}
    return {
        "GIT_AUTHOR_NAME": _FALLBACK_NAME,
        "GIT_AUTHOR_EMAIL": _FALLBACK_EMAIL,
        "GIT_COMMITTER_NAME": _FALLBACK_NAME,
        "GIT_COMMITTER_EMAIL": _FALLBACK_EMAIL,
    }


def snapshot(repo: git.Repo) -> Snapshot:
    """Record `repo`'s working tree as a tree object through a temporary index (the user's index is untouched).

    Raises:
        InputError: the repository has no commit yet.
    """
    try:
        head = repo.head.commit.hexsha
    except ValueError as exc:
        raise InputError(f"{repo.working_tree_dir} has no commit yet; commit once before publishing") from exc
    head_tree = repo.head.commit.tree.hexsha
    real_index = Path(repo.git.rev_parse("--git-path", "index"))
    if not real_index.is_absolute():
        real_index = Path(str(repo.working_tree_dir)) / real_index
    workdir = tempfile.mkdtemp(prefix="vibe-index-")
    try:
        index = os.path.join(workdir, "index")
        env = {"GIT_INDEX_FILE": index}
        if real_index.is_file():
            # Starting from the real index reuses its stat data, so unchanged files are not re-hashed. copy2 keeps
            # the index's mtime: git's racy-entry check compares it with the files' mtimes, and a fresh mtime
            # would hide a same-size edit made in the second the index was written.
            shutil.copy2(real_index, index)
        else:
            repo.git.read_tree("HEAD", env=env)
        repo.git.add("--all", env=env)
        tree = str(repo.git.write_tree(env=env))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return Snapshot(head=head, tree=tree, dirty=tree != head_tree)


def commit_snapshot(repo: git.Repo, snap: Snapshot, message: str) -> str:
    """The commit holding `snap`: a new commit on top of HEAD when dirty, else HEAD itself."""
    if not snap.dirty:
        return snap.head
    return str(repo.git.commit_tree(snap.tree, "-p", snap.head, "-m", message, env=_identity_env(repo)))


def has_commit(repo: git.Repo, sha: str) -> bool:
    """Whether the commit `sha` is in the local object database."""
    status, _, _ = repo.git.cat_file("-e", f"{sha}^{{commit}}", with_extended_output=True, with_exceptions=False)
    return bool(status == 0)


def is_ancestor(repo: git.Repo, ancestor: str, descendant: str) -> bool:
    """Whether `ancestor` is reachable from `descendant` (both must be local)."""
    status, _, _ = repo.git.merge_base(
        "--is-ancestor", ancestor, descendant, with_extended_output=True, with_exceptions=False
    )
    return bool(status == 0)


def same_content(repo: git.Repo, existing: str, wanted: str, snap: Snapshot) -> bool:
    """Whether the remote's `existing` commit already holds what `wanted` would publish (so no push is needed)."""
    if existing == wanted:
        return True
    if not snap.dirty or not has_commit(repo, existing):
        return False
    line = str(repo.git.rev_list("--parents", "-n", "1", existing)).split()
    tree = str(repo.git.rev_parse(f"{existing}^{{tree}}"))
    return tree == snap.tree and line[1:] == [snap.head]


def _run_remote(repo: git.Repo, args: list[str], auth: GitAuth | None, secrets: Iterable[str]) -> tuple[int, str, str]:
    env: dict[str, str] = {"GIT_TERMINAL_PROMPT": "0"}
    if auth is not None:
        env.update(auth.env())
    status, out, err = repo.git.execute(
        ["git", *args], with_extended_output=True, with_exceptions=False, env=env
    )
    return int(status), _redact(str(out), secrets), _redact(str(err), secrets)


def _redact(text: str, secrets: Iterable[str]) -> str:
    # Credentials a user embedded in a remote URL must not reach our messages either.
    text = re.sub(r"(\w+://)[^/@\s]+@", r"\1", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


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
    repo: git.Repo,
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


def fetch(repo: git.Repo, remote: Remote, branch: str, *, auth: GitAuth | None, secrets: Iterable[str] = ()) -> None:
    """Fetch one branch into its remote-tracking ref.

    Raises:
        GitHubError: the fetch failed.
    """
    refspec = f"+refs/heads/{branch}:refs/remotes/{remote.name}/{branch}"
    status, _, err = _run_remote(repo, ["fetch", "--no-tags", remote.name, refspec], auth, secrets)
    if status != 0:
        raise _remote_fault(f"fetching {branch} from", remote, err)


def push_with_lease(
    repo: git.Repo,
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

