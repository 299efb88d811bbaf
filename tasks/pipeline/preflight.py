"""Checks a pipeline run makes before any work: a usable repository, a publishable remote, a working sandbox."""

from __future__ import annotations

import os
from pathlib import Path

from vibe.errors import InputError
from vibe.settings import Settings

__all__ = ["check_publishable", "preflight", "require_sandbox", "resolve_repo"]


def resolve_repo(repo_path: str | Path) -> Path:
    """The repository's absolute path.

    Raises:
        InputError: it is not a directory.
    """
    repo = Path(repo_path).expanduser().resolve()
    if not repo.is_dir():
        raise InputError(f"{repo} is not a directory: pass the path of a git repository with --repo")
    return repo


def preflight(repo: Path, settings: Settings, *, publish: bool, model: str | None = None) -> None:
    """The refusals before any work: no remote to publish to (when `publish`), no sandbox for the tests, no
    model of the chain that could be called (no key, no cassette).

    Raises:
        InputError: see `check_publishable`.
        SandboxUnavailableError: see `require_sandbox`.
        ConfigError: an unknown model, or no key for any model of the chain (one short line).
    """
    from providers.factory import check_callable

    check_callable(settings, model or settings.model)
    if publish:
        check_publishable(repo)
    require_sandbox(settings)


def check_publishable(repo: Path) -> None:
    """Fail before any LLM call when the pull request could never be published (no usable git remote).

    Raises:
        InputError: the message says how to add a remote (or to pass --no-pr).
    """
    from tasks.pull_requests.git_ops import find_remote, open_repo

    try:
        find_remote(open_repo(repo))
    except InputError as exc:
        raise InputError(f"{exc} (or pass --no-pr to skip the pull request)") from exc


def require_sandbox(settings: Settings) -> None:
    """Fail before any work when the tests the model writes could not run isolated here.

    Raises:
        SandboxUnavailableError: bubblewrap does not work and `VIBE_SANDBOX=unsafe` is not set; the message says
            how to install it.
    """
    from tasks.testing.sandbox import SandboxUnavailableError, bwrap_available, unavailable_message

    if settings.sandbox == "unsafe":
        return
    why_not = bwrap_available(os.environ.get("PATH"))
    if why_not is not None:
        raise SandboxUnavailableError(unavailable_message(why_not))
