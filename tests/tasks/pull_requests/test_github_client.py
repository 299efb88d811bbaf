"""The GitHub adapter on its own: metadata cache, error translation, URL parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.pull_requests import GitHubClient
from tasks.pull_requests.git_ops import github_repo_from_url, strip_userinfo
from tasks.pull_requests.github import web_url_for
from tests.fakes.github_server import FakeGitHub
from tests.tasks.pull_requests.conftest import FULL_NAME, TOKEN
from vibe.errors import GitHubError
from vibe.settings import Settings


def test_repository_metadata_is_cached_in_memory_and_on_disk(fake_github: FakeGitHub, settings: Settings) -> None:
    first = GitHubClient.from_settings(settings)
    assert first.repository(FULL_NAME).default_branch == "main"
    assert first.repository(FULL_NAME).default_branch == "main"
    second = GitHubClient.from_settings(settings)
    assert second.repository(FULL_NAME).full_name == FULL_NAME
    assert fake_github.count("GET") == 1
    cached = list((settings.home / "cache" / "github").glob("*.json"))
    assert len(cached) == 1
    assert TOKEN not in cached[0].read_text()


def test_expired_metadata_is_fetched_again(fake_github: FakeGitHub, settings: Settings) -> None:
    now = [1_000.0]
    gh = GitHubClient.from_settings(settings, clock=lambda: now[0], cache_ttl_s=60.0)
    gh.repository(FULL_NAME)
    now[0] += 61
    gh.repository(FULL_NAME)
    assert fake_github.count("GET") == 2


def test_unknown_repository_is_a_clear_404(fake_github: FakeGitHub, settings: Settings) -> None:
    with pytest.raises(GitHubError, match="not found") as info:
        GitHubClient.from_settings(settings, cache_dir=None).repository("acme/nope")
    assert info.value.status == 404
    assert not info.value.retryable


def test_plain_403_is_not_retried(fake_github: FakeGitHub, settings: Settings) -> None:
    sleeps: list[float] = []
    fake_github.fail("GET", r".*", 403, message="Resource not accessible by integration")
    with pytest.raises(GitHubError, match="lacks permission"):
        GitHubClient.from_settings(settings, sleep=sleeps.append).repository(FULL_NAME)
    assert sleeps == []


def test_unreachable_github_is_retryable(tmp_path: Path) -> None:
    from pydantic import SecretStr

    sleeps: list[float] = []
    gh = GitHubClient(token=SecretStr(TOKEN), api_url="http://127.0.0.1:9/api/v3", sleep=sleeps.append,
                      max_retries=2)
    with pytest.raises(GitHubError, match="cannot reach GitHub") as info:
        gh.repository(FULL_NAME)
    assert info.value.retryable
    assert len(sleeps) == 2
    assert TOKEN not in repr(gh)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/acme/widgets.git", "acme/widgets"),
        ("https://github.com/acme/widgets", "acme/widgets"),
        ("https://x-access-token:abc@github.com/acme/widgets.git", "acme/widgets"),
        ("git@github.com:acme/widgets.git", "acme/widgets"),
        ("ssh://git@github.com/acme/widgets.git", "acme/widgets"),
        ("ssh://git@ghe.example:2222/acme/widgets", "acme/widgets"),
        ("https://ghe.example/acme/my.repo.git", "acme/my.repo"),
        ("/srv/git/widgets.git", None),
        ("widgets", None),
    ],
)
def test_owner_and_name_from_remote_urls(url: str, expected: str | None) -> None:
    assert github_repo_from_url(url) == expected


def test_web_urls_and_credential_stripping() -> None:
    assert web_url_for("https://api.github.com") == "https://github.com/"
    assert web_url_for("https://ghe.example/api/v3") == "https://ghe.example/"
    assert strip_userinfo("https://user:pw@github.com/a/b.git") == "https://github.com/a/b.git"
    assert strip_userinfo("git@github.com:a/b.git") == "git@github.com:a/b.git"
