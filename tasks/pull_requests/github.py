"""`GitHubClient`: the GitHub adapter, and the only module that imports PyGithub.

Retries live here and only here. PyGithub's own `GithubRetry` is switched off (`retry=None`) because it waits a
fixed minute on secondary rate limits, ignores `x-ratelimit-reset` for them and cannot be observed in tests; this
adapter instead retries 5xx answers, connection faults and rate limits itself:

- `retry-after` present: wait exactly that long;
- `x-ratelimit-remaining: 0`: wait until `x-ratelimit-reset` (plus one second, the reset's granularity);
- a secondary rate limit with neither header: wait at least a minute, as GitHub's documentation asks;
- 5xx and connection faults: exponential backoff with jitter.

A wait longer than `github_max_retry_wait_s` is not slept: the call fails at once with a retryable
`GitHubError` that says how long GitHub asked for. Prefect tasks around this adapter do not retry GitHub
faults again. Repository metadata is cached in memory and on disk (under `settings.home`) for
`github_cache_ttl_s`. Every PyGithub and `requests` exception is translated into `GitHubError` here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from github import Auth, Github, GithubException
from github.PullRequest import PullRequest
from pydantic import SecretStr

from tasks.pull_requests.protocol import PullRequestInfo, RepositoryInfo
from vibe.errors import GitHubError
from vibe.fsutil import atomic_write
from vibe.settings import Settings

_log = logging.getLogger(__name__)

T = TypeVar("T")

_CACHE_NAMESPACE = "github-repo:v1"
_BACKOFF_BASE_S = 1.0
_SECONDARY_RATE_WAIT_S = 60.0


def web_url_for(api_url: str) -> str:
    """The web root whose git remotes belong to the API at `api_url`.

    `https://api.github.com` serves `https://github.com/`; GitHub Enterprise (`https://ghe.example/api/v3`) and
    test servers serve their remotes from the API's own host.
    """
    parts = urlsplit(api_url)
    host = parts.netloc
    if host == "api.github.com":
        host = "github.com"
    return f"{parts.scheme}://{host}/"


class GitHubClient:
    """The GitHub REST adapter implementing `PullRequestApi` with PyGithub (`GitHubHost` drives it).

    Args:
        token: the GitHub token (sent only as the `Authorization` header of API calls).
        api_url: the REST root (`https://api.github.com`, `https://ghe.example/api/v3`, a test server).
        cache_dir: where repository metadata is cached across processes; None keeps it in memory only.
        cache_ttl_s: how long cached metadata is trusted.
        max_retries: retries after the first attempt, for retryable faults only.
        max_retry_wait_s: the longest single wait this client accepts; a longer one fails the call instead.
        write_interval_s: the pause PyGithub keeps between mutating requests.
        timeout_s: the HTTP timeout of one request.
        sleep: how to wait between attempts (tests pass a recorder).
        clock: the current Unix time (for `x-ratelimit-reset` and the cache).
    """

    def __init__(
        self,
        *,
        token: SecretStr,
        api_url: str,
        cache_dir: Path | None = None,
        cache_ttl_s: float = 3600.0,
        max_retries: int = 3,
        max_retry_wait_s: float = 60.0,
        write_interval_s: float = 1.0,
        timeout_s: int = 15,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._api_url = api_url.rstrip("/")
        self._cache_dir = cache_dir
        self._cache_ttl_s = cache_ttl_s
        self._max_retries = max_retries
        self._max_retry_wait_s = max_retry_wait_s
        self._sleep = sleep
        self._clock = clock
        self._repos: dict[str, tuple[float, RepositoryInfo]] = {}
        self._gh = Github(
            auth=Auth.Token(token.get_secret_value()),
            base_url=self._api_url,
            timeout=timeout_s,
            retry=None,  # this class is the one retry layer
            seconds_between_requests=None,
            seconds_between_writes=write_interval_s or None,
            lazy=True,  # objects are built from the answers we have; no hidden completion requests
        )

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> GitHubClient:
        """A client configured from `settings` (which must hold a token); `overrides` replace constructor args."""
        if settings.github_token is None:
            raise GitHubError("no GitHub token configured (set GITHUB_TOKEN)", retryable=False)
        kwargs: dict[str, Any] = {
            "token": settings.github_token,
            "api_url": settings.github_api_url,
            "cache_dir": settings.home / "cache" / "github",
            "cache_ttl_s": settings.github_cache_ttl_s,
            "max_retries": settings.github_max_retries,
            "max_retry_wait_s": settings.github_max_retry_wait_s,
            "write_interval_s": settings.github_write_interval_s,
        }
        kwargs.update(overrides)
        return cls(**kwargs)

    def close(self) -> None:
        """Close the HTTP connections."""
        self._gh.close()

    def __repr__(self) -> str:
        return f"GitHubClient(api_url={self._api_url!r})"

    @property
    def web_url(self) -> str:
        """The web root of this host's git remotes."""
        return web_url_for(self._api_url)

    # --- PullRequestApi -------------------------------------------------------------------------------

    def repository(self, full_name: str) -> RepositoryInfo:
        """The repository's metadata: from memory, then the disk cache, then one GET."""
        now = self._clock()
        cached = self._repos.get(full_name)
        if cached is not None and now - cached[0] < self._cache_ttl_s:
            return cached[1]
        from_disk = self._read_cache(full_name, now)
        if from_disk is not None:
            self._repos[full_name] = (now, from_disk)
            return from_disk

        def fetch() -> RepositoryInfo:
            repo = self._gh.get_repo(full_name).complete()  # the one GET
            return RepositoryInfo(
                full_name=str(repo.full_name), default_branch=str(repo.default_branch), html_url=str(repo.html_url)
            )

        info = self._call(f"reading repository {full_name}", fetch)
        self._repos[full_name] = (now, info)
        self._write_cache(full_name, now, info)
        return info

    def find_open_pull_requests(self, full_name: str, head: str) -> list[PullRequestInfo]:
        """Open pull requests with head `owner:branch` (one GET; a head has at most one open PR)."""

        def fetch() -> list[PullRequestInfo]:
            pulls = self._gh.get_repo(full_name).get_pulls(state="open", head=head)
            return [_pull_info(pr) for pr in pulls]

        return self._call(f"listing pull requests of {full_name}", fetch)

    def create_pull_request(
        self, full_name: str, *, head: str, base: str, title: str, body: str, draft: bool
    ) -> PullRequestInfo:
        """Open a pull request from branch `head` into `base` (one POST)."""

        def create() -> PullRequestInfo:
            pr = self._gh.get_repo(full_name).create_pull(base=base, head=head, title=title, body=body, draft=draft)
            return _pull_info(pr)

        return self._call(f"opening a pull request on {full_name}", create)

    def update_pull_request(
        self, full_name: str, number: int, *, title: str | None = None, body: str | None = None,
        base: str | None = None,
    ) -> PullRequestInfo:
        """Change title, body and/or base of pull request `number` (one PATCH)."""
        given = {"title": title, "body": body, "base": base}
        fields: dict[str, Any] = {k: v for k, v in given.items() if v is not None}

        def update() -> PullRequestInfo:
            pr = self._gh.get_repo(full_name).get_pull(number)  # lazy: no request
            pr.edit(**fields)
            return _pull_info(pr)

        return self._call(f"updating pull request #{number} of {full_name}", update)

    def add_labels(self, full_name: str, number: int, labels: list[str]) -> None:
        """Add `labels` to pull request `number` (one POST; GitHub creates unknown labels)."""

        def add() -> None:
            self._gh.get_repo(full_name).get_issue(number).add_to_labels(*labels)

        self._call(f"labelling pull request #{number} of {full_name}", add)

    def set_draft(self, pull: PullRequestInfo, draft: bool) -> None:
        """Convert to draft or mark ready for review (one GraphQL mutation; REST cannot change it)."""
        mutation = "convertPullRequestToDraft" if draft else "markPullRequestReadyForReview"

        def mutate() -> None:
            self._gh.requester.graphql_named_mutation(
                mutation_name=mutation,
                mutation_input={"pullRequestId": pull.node_id},
                output_schema="pullRequest { isDraft }",
            )

        self._call(f"changing the draft state of pull request #{pull.number}", mutate)

    # --- retries and error translation --------------------------------------------------------------

    def _call(self, what: str, operation: Callable[[], T]) -> T:
        attempt = 0
        while True:
            try:
                return operation()
            except GithubException as exc:
                headers = _lower(exc.headers or {})
                message = _message(exc.data)
                wait = self._retry_wait(exc.status, headers, message, attempt)
                error = _translate(what, exc.status, message, retryable=wait is not None)
                cause: Exception = exc
            except requests.RequestException as exc:
                wait = self._backoff(attempt)
                error = GitHubError(f"{what}: cannot reach GitHub ({type(exc).__name__})", retryable=True)
                cause = exc
            if wait is None or attempt >= self._max_retries:
                raise error from cause
            if wait > self._max_retry_wait_s:
                raise GitHubError(
                    f"{what}: GitHub asked to wait {wait:.0f}s, longer than github_max_retry_wait_s "
                    f"({self._max_retry_wait_s:.0f}s); try again later",
                    retryable=True,
                    status=error.status,
                ) from cause
            attempt += 1
            _log.warning("%s failed (%s); retry %d/%d in %.1fs", what, error, attempt, self._max_retries, wait)
            self._sleep(wait)

    def _retry_wait(self, status: int, headers: Mapping[str, str], message: str, attempt: int) -> float | None:
        """Seconds to wait before retrying, or None when retrying cannot help."""
        retry_after = _number(headers.get("retry-after"))
        if status >= 500:
            return retry_after if retry_after is not None else self._backoff(attempt)
        if status not in (403, 429):
            return None
        if retry_after is not None:
            return retry_after
        reset = _number(headers.get("x-ratelimit-reset"))
        if headers.get("x-ratelimit-remaining") == "0" and reset is not None:
            return max(reset - self._clock(), 0.0) + 1.0
        if status == 429 or "secondary rate limit" in message.lower():
            return max(_SECONDARY_RATE_WAIT_S, self._backoff(attempt))
        return None  # a plain 403: a permission problem, not a rate limit

    def _backoff(self, attempt: int) -> float:
        # 1s, 2s, 4s, ... with up to 25% jitter so that many workers do not retry in lockstep.
        return float(_BACKOFF_BASE_S * 2**attempt * (1 + random.random() / 4))

    # --- metadata cache -----------------------------------------------------------------------------

    def _cache_file(self, full_name: str) -> Path | None:
        if self._cache_dir is None:
            return None
        digest = hashlib.sha256(f"{_CACHE_NAMESPACE}\n{self._api_url}\n{full_name.lower()}".encode()).hexdigest()
        return self._cache_dir / f"{digest[:32]}.json"

    def _read_cache(self, full_name: str, now: float) -> RepositoryInfo | None:
        path = self._cache_file(full_name)
        if path is None or not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if now - float(data["fetched_at"]) >= self._cache_ttl_s:
                return None
            return RepositoryInfo(
                full_name=str(data["full_name"]),
                default_branch=str(data["default_branch"]),
                html_url=str(data["html_url"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None  # a damaged cache entry is refetched, never trusted

    def _write_cache(self, full_name: str, now: float, info: RepositoryInfo) -> None:
        path = self._cache_file(full_name)
        if path is None:
            return
        payload = {"fetched_at": now, "full_name": info.full_name, "default_branch": info.default_branch,
                   "html_url": info.html_url}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, json.dumps(payload))
        except OSError as exc:
            _log.warning("cannot write the GitHub metadata cache at %s: %s", path, exc)


def _pull_info(pr: PullRequest) -> PullRequestInfo:
    return PullRequestInfo(
        number=int(pr.number),
        url=str(pr.html_url),
        title=str(pr.title or ""),
        body=str(pr.body or ""),
        draft=bool(pr.draft),
        labels=tuple(str(label.name) for label in pr.labels),
        base=str(pr.base.ref),
        head=str(pr.head.ref),
        node_id=str(pr.node_id),
    )


def _lower(headers: Mapping[str, Any]) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in headers.items()}


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _message(data: Any) -> str:
    if isinstance(data, dict):
        text = str(data.get("message") or "")
        errors = data.get("errors")
        if isinstance(errors, list):
            details = [str(e.get("message") or e.get("code") or e) if isinstance(e, dict) else str(e) for e in errors]
            text = "; ".join([text, *details]) if text else "; ".join(details)
        return text
    return str(data or "")


def _translate(what: str, status: int, message: str, *, retryable: bool) -> GitHubError:
    if status == 401:
        text = f"{what}: GitHub rejected the token (401 {message or 'Bad credentials'}); check GITHUB_TOKEN"
    elif status == 403 and not retryable:
        text = f"{what}: forbidden (403 {message}); the token lacks permission for this repository"
    elif status == 404:
        text = f"{what}: not found (404); check the repository name and that the token can see it"
    else:
        text = f"{what}: GitHub answered {status}" + (f" ({message})" if message else "")
    return GitHubError(text, retryable=retryable, status=status)
