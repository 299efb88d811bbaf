"""The one way the pipeline runs git: an explicit git dir, a fixed safe configuration, a minimal environment.

Every git command of the pipeline (workspaces, the change record, publishing) goes through `Git.run`, so none
of them can be steered by what untrusted code (a model's edit, a test it wrote) left in a tree:

- **The git dir is always explicit** (`--git-dir`, and `--work-tree` when a tree is read). Git never discovers
  its repository from a tree, so a `.git` file or directory written into one (`gitdir: .evilgit`) is never
  followed. Without a work tree the command runs as in a bare repository (`core.bare=true`): nothing is read
  from the current directory.
- **Fixed overrides** (`SAFE_CONFIG`, passed as `-c`, which beats every config file): no fsmonitor, no hooks,
  no untracked cache, no external diff, no pager, no `ext::` transport. Diffs add `--no-ext-diff
  --no-textconv` and blobs are hashed with `--no-filters` (the callers do that).
- **`isolated=True`** also drops the user's global and system config (`GIT_CONFIG_GLOBAL=/dev/null`,
  `GIT_CONFIG_NOSYSTEM=1`): used with a git dir the pipeline made itself, no filter, diff or merge driver is
  defined anywhere, so attributes a hostile tree declares name drivers that do not exist.
- **A minimal environment** (`git_env`): PATH, HOME, XDG_CONFIG_HOME, LANG, LC_*, TZ, the commit identity
  variables, plus the `GIT_*` variables set here. Never API keys, tokens, `REDIS_URL` or `PREFECT_*`. Commands
  that talk to a remote (`remote=True`) also get the ssh agent, proxy and CA variables, and the GitHub token
  only through the `extra_env` of the one push/fetch/ls-remote that needs it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from vibe.errors import InputError

__all__ = ["SAFE_CONFIG", "Git", "GitCommandError", "UserRepo", "find_user_repo", "git_env"]

# `-c` beats repository, global and system config. `core.hooksPath` at /dev/null means "no hook exists".
SAFE_CONFIG: tuple[str, ...] = (
    "core.fsmonitor=false",
    f"core.hooksPath={os.devnull}",
    "core.untrackedCache=false",
    "core.splitIndex=false",
    "core.pager=cat",
    "diff.external=",
    "protocol.ext.allow=never",
    "submodule.recurse=false",
    "advice.detachedHead=false",
    "core.quotePath=false",
    "color.ui=never",
)

_BASE_ENV = ("PATH", "HOME", "XDG_CONFIG_HOME", "LANG", "TZ")
# The commit identity is not a secret, and CI machines often set it only this way.
_IDENTITY_ENV = ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_AUTHOR_DATE", "GIT_COMMITTER_NAME",
                 "GIT_COMMITTER_EMAIL", "GIT_COMMITTER_DATE", "EMAIL")
# What a push or fetch to the user's own remote may need (an ssh agent, a corporate proxy, a CA bundle).
_REMOTE_ENV = ("SSH_AUTH_SOCK", "GIT_SSH", "GIT_SSH_COMMAND", "GIT_SSL_CAINFO", "SSL_CERT_FILE", "SSL_CERT_DIR",
               "http_proxy", "https_proxy", "no_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
               "ALL_PROXY")


class GitCommandError(InputError):
    """A git command of the pipeline failed; the message carries git's own words."""


def git_env(
    extra: Mapping[str, str] | None = None, *, remote: bool = False, isolated: bool = False
) -> dict[str, str]:
    """The whole environment of a pipeline git command (nothing else of this process's environment).

    Args:
        extra: variables this one command needs (`GIT_INDEX_FILE`, the token's `GIT_CONFIG_*`); set last.
        remote: the command talks to a remote: also pass ssh agent, proxy and CA variables.
        isolated: ignore the user's global config too (for git dirs the pipeline made itself).
    """
    allowed = _BASE_ENV + _IDENTITY_ENV + (_REMOTE_ENV if remote else ())
    env = {k: v for k, v in os.environ.items() if k in allowed or k.startswith("LC_")}
    env.setdefault("PATH", os.defpath)
    env.update({
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_OPTIONAL_LOCKS": "0",
        "GIT_EDITOR": "true",
        "GIT_ATTR_NOSYSTEM": "1",
    })
    if isolated:
        env["GIT_CONFIG_GLOBAL"] = os.devnull
    if extra:
        env.update(extra)
    return env


@dataclass(frozen=True)
class Git:
    """How to run git on one repository: which git dir, work tree, index and object store, and whose config.

    Attributes:
        git_dir: the git directory, always passed explicitly (never discovered from a tree).
        work_tree: the tree commands read or write; None runs as in a bare repository.
        index_file: a private index (`GIT_INDEX_FILE`); None uses the git dir's own.
        isolated: ignore the user's global config (see the module docstring).
    """

    git_dir: Path
    work_tree: Path | None = None
    index_file: Path | None = None
    isolated: bool = False

    def with_index(self, index_file: Path | None) -> Git:
        """The same repository with another index file."""
        return replace(self, index_file=index_file)

    def argv(self, args: Sequence[str]) -> list[str]:
        """The full command line of `git <args>` (the safe overrides and explicit directories first)."""
        head = ["git", f"--git-dir={self.git_dir}"]
        if self.work_tree is not None:
            head.append(f"--work-tree={self.work_tree}")
        overrides = [*SAFE_CONFIG, *(("core.bare=true",) if self.work_tree is None else ())]
        for item in overrides:
            head += ["-c", item]
        return [*head, *args]

    def env(self, extra: Mapping[str, str] | None = None, *, remote: bool = False) -> dict[str, str]:
        """The environment `run` gives git (see `git_env`)."""
        mine = {"GIT_INDEX_FILE": str(self.index_file)} if self.index_file is not None else {}
        return git_env({**mine, **(extra or {})}, remote=remote, isolated=self.isolated)

    def run(
        self,
        *args: str,
        input_bytes: bytes | None = None,
        check: bool = True,
        extra_env: Mapping[str, str] | None = None,
        remote: bool = False,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run `git <args>`; stdout and stderr are captured.

        Raises:
            GitCommandError: `check` is set and git exited non-zero.
        """
        cwd = self.work_tree if self.work_tree is not None else self.git_dir
        proc = subprocess.run(
            self.argv(args),
            cwd=cwd,
            input=input_bytes,
            capture_output=True,
            env=self.env(extra_env, remote=remote),
            check=False,
        )
        if check and proc.returncode != 0:
            message = proc.stderr.decode(errors="replace").strip() or proc.stdout.decode(errors="replace").strip()
            command = next((a for a in args if not a.startswith("-")), "")
            raise GitCommandError(f"git {command} failed in {cwd}: {message}")
        return proc

    def out(self, *args: str, input_bytes: bytes | None = None, extra_env: Mapping[str, str] | None = None) -> str:
        """The stripped stdout of `git <args>` (which must succeed)."""
        proc = self.run(*args, input_bytes=input_bytes, extra_env=extra_env)
        return proc.stdout.decode(errors="surrogateescape").strip()


@dataclass(frozen=True)
class UserRepo:
    """The user's repository, found from a path in its (trusted) working tree.

    Attributes:
        top: the working tree's top-level directory.
        git_dir: that working tree's git dir (differs from `common_dir` in a linked worktree).
        common_dir: the shared git dir (objects, refs, config).
    """

    top: Path
    git_dir: Path
    common_dir: Path

    def git(self, *, work_tree: bool = False, index_file: Path | None = None) -> Git:
        """A runner on this repository (bare-like unless `work_tree`)."""
        return Git(git_dir=self.git_dir, work_tree=self.top if work_tree else None, index_file=index_file)


def find_user_repo(path: Path) -> UserRepo:
    """The repository whose working tree holds `path`.

    Only for the user's own checkout: discovering a repository from a directory follows its `.git`, which is
    exactly what must never happen on a tree untrusted code touched.

    Raises:
        InputError: `path` is missing, not a directory, not in a git repository, or in a bare one.
    """
    if not path.exists():
        raise InputError(f"{path} does not exist")
    if not path.is_dir():
        raise InputError(f"{path} is not a directory")
    argv = ["git", *[a for item in SAFE_CONFIG for a in ("-c", item)], "rev-parse", "--path-format=absolute"]
    proc = subprocess.run([*argv, "--is-bare-repository", "--git-dir", "--git-common-dir"],
                          cwd=path, capture_output=True, env=git_env(), check=False)
    lines = proc.stdout.decode(errors="surrogateescape").splitlines()
    if proc.returncode != 0 or len(lines) != 3:
        raise InputError(f"{path} is not a git repository (run `git init` there and commit, or pass the "
                         "repository's path)")
    if lines[0] == "true":
        raise InputError(f"{path} is a bare repository; pass a working tree")
    top = subprocess.run([*argv, "--show-toplevel"], cwd=path, capture_output=True, env=git_env(), check=False)
    if top.returncode != 0:
        raise InputError(f"{path} is inside a git directory, not a working tree; pass the repository's path")
    return UserRepo(top=Path(top.stdout.decode(errors="surrogateescape").strip()).resolve(),
                    git_dir=Path(lines[1]).resolve(), common_dir=Path(lines[2]).resolve())
