"""publish_pull_request against real git repositories, a bare remote and the fake GitHub on loopback."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from tasks.pull_requests import GitHubClient, branch_for, marker, marker_key, publish_pull_request
from tests.fakes.github_server import FakeGitHub
from tests.tasks.pull_requests.conftest import FULL_NAME, TOKEN, Repos, git
from vibe.errors import GitHubError, InputError
from vibe.settings import Settings

KEY = "add-verbose-flag"
BRANCH = "vibe/add-verbose-flag"


def client(settings: Settings, sleeps: list[float] | None = None, **kw: object) -> GitHubClient:
    record = sleeps if sleeps is not None else []
    return GitHubClient.from_settings(settings, sleep=record.append, **kw)


def edit(repos: Repos, text: str = "print('hello, verbose')\n") -> None:
    (repos.work / "app.py").write_text(text)
    (repos.work / "new_module.py").write_text("VALUE = 1\n")


def publish(repos: Repos, settings: Settings, gh: GitHubClient | None, **kw: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = {"title": "Add a --verbose flag", "body": "Adds the flag.", "key": KEY,
                               "github_repo": FULL_NAME}
    args.update(kw)
    return publish_pull_request(repos.work, settings=settings, github=gh, **args)  # type: ignore[arg-type]


def test_first_run_opens_one_pr_with_four_calls_and_leaves_the_checkout_alone(
    repos: Repos, fake_github: FakeGitHub, settings: Settings
) -> None:
    edit(repos)
    (repos.work / "debug.log").write_text("ignored\n")
    status_before = git(repos.work, "status", "--porcelain")
    result = publish(repos, settings, client(settings), labels=["needs-review"])

    assert result.created
    assert result.number == 1
    assert result.branch == BRANCH
    assert result.url == f"{fake_github.root}/{FULL_NAME}/pull/1"
    assert result.to_json_dict() == {"branch": BRANCH, "number": 1, "url": result.url, "created": True}
    # The branch holds the change on top of main; ignored files stay out.
    assert repos.show(BRANCH, "app.py") == "print('hello, verbose')"
    assert repos.show(BRANCH, "new_module.py") == "VALUE = 1"
    assert "debug.log" not in git(repos.remote, "ls-tree", "--name-only", BRANCH)
    assert git(repos.remote, "rev-parse", f"{BRANCH}^") == git(repos.remote, "rev-parse", "main")
    # The user's checkout: same branch, same uncommitted changes, no local PR branch.
    assert git(repos.work, "branch", "--show-current") == "main"
    assert git(repos.work, "status", "--porcelain") == status_before
    assert git(repos.work, "branch", "--list", "vibe/*") == ""
    # The PR: base from the repo's default branch, marker, labels.
    (pr,) = fake_github.pulls(FULL_NAME)
    assert pr["base"] == "main"
    assert pr["head"] == BRANCH
    assert pr["title"] == "Add a --verbose flag"
    assert pr["body"].startswith("Adds the flag.")
    assert marker(KEY) in pr["body"]
    assert pr["labels"] == ["vibe", "needs-review"]
    assert pr["draft"] is False
    # Economy: metadata, find, create, label.
    assert fake_github.count("GET", r".*/repos/acme/widgets") == 1
    assert fake_github.count("GET", r".*/pulls") == 1
    assert fake_github.count("POST", r".*/pulls") == 1
    assert fake_github.count("POST", r".*/labels") == 1
    assert len(fake_github.calls) == 4


def test_rerun_unchanged_makes_one_call_and_pushes_nothing(
    repos: Repos, fake_github: FakeGitHub, settings: Settings
) -> None:
    edit(repos)
    publish(repos, settings, client(settings), labels=["needs-review"])
    sha = repos.remote_branches()[BRANCH]
    fake_github.reset_calls()

    # A new client (a new process): metadata comes from the disk cache.
    again = publish(repos, settings, client(settings), labels=["needs-review"])

    assert not again.created
    assert not again.pushed
    assert again.number == 1
    assert repos.remote_branches()[BRANCH] == sha
    assert len(fake_github.pulls(FULL_NAME)) == 1
    assert [(c.method, c.path) for c in fake_github.calls] == [("GET", "/api/v3/repos/acme/widgets/pulls")]


def test_rerun_with_new_changes_force_pushes_the_same_branch_and_updates_the_same_pr(
    repos: Repos, fake_github: FakeGitHub, settings: Settings
) -> None:
    edit(repos)
    publish(repos, settings, client(settings))
    first = repos.remote_branches()[BRANCH]
    fake_github.reset_calls()

    edit(repos, "print('second try')\n")
    (repos.work / "new_module.py").unlink()
    result = publish(repos, settings, client(settings), title="Add --verbose (v2)", body="Second version.")

    assert result.number == 1
    assert not result.created
    assert result.pushed
    branches = repos.remote_branches()
    assert set(branches) == {"main", BRANCH}  # no stray branch
    assert branches[BRANCH] != first
    assert git(repos.remote, "rev-parse", f"{BRANCH}^") == branches["main"]  # rebuilt on main, not stacked
    assert repos.show(BRANCH, "app.py") == "print('second try')"
    assert "new_module.py" not in git(repos.remote, "ls-tree", "--name-only", BRANCH)
    (pr,) = fake_github.pulls(FULL_NAME)
    assert pr["title"] == "Add --verbose (v2)"
    assert pr["body"].startswith("Second version.")
    assert marker_key(pr["body"]) == KEY
    assert pr["labels"] == ["vibe"]
    # find + one PATCH; labels already there.
    assert [(c.method, c.path.rsplit("/", 2)[-2:][-1]) for c in fake_github.calls] == [("GET", "pulls"),
                                                                                        ("PATCH", "1")]
    assert set(fake_github.calls[1].body) == {"title", "body"}


def test_crash_between_push_and_pr_creation_is_repaired_by_the_next_run(
    repos: Repos, fake_github: FakeGitHub, settings: Settings
) -> None:
    edit(repos)
    sleeps: list[float] = []
    fake_github.fail("POST", r".*/pulls", 502, times=4)  # first attempt + 3 retries: the run dies
    with pytest.raises(GitHubError) as info:
        publish(repos, settings, client(settings, sleeps))
    assert info.value.retryable
    assert info.value.status == 502
    assert len(sleeps) == 3
    assert all(1.0 <= s <= 5.0 for s in sleeps)
    assert BRANCH in repos.remote_branches()
    assert fake_github.pulls(FULL_NAME) == []
    pushed = repos.remote_branches()[BRANCH]
    fake_github.reset_calls()

    result = publish(repos, settings, client(settings))

    assert result.created
    assert result.number == 1
    assert not result.pushed
    assert repos.remote_branches()[BRANCH] == pushed
    assert len(fake_github.pulls(FULL_NAME)) == 1
    assert [(c.method, c.path) for c in fake_github.calls] == [
        ("GET", "/api/v3/repos/acme/widgets/pulls"),
        ("POST", "/api/v3/repos/acme/widgets/pulls"),
        ("POST", "/api/v3/repos/acme/widgets/issues/1/labels"),
    ]


def test_create_answered_already_exists_adopts_that_pr(
    repos: Repos, fake_github: FakeGitHub, settings: Settings
) -> None:
    edit(repos)
    gh = client(settings)
    publish(repos, settings, gh)
    # The list misses the PR (as after a create whose answer was lost): the 422 "already exists" is adopted.
    fake_github.fail("GET", r".*/pulls", 200, body=[])
    fake_github.reset_calls()
    result = publish(repos, settings, gh, body="Updated.")
    assert result.number == 1
    assert not result.created
    assert len(fake_github.pulls(FULL_NAME)) == 1
    assert fake_github.pulls(FULL_NAME)[0]["body"].startswith("Updated.")
    assert [c.method for c in fake_github.calls] == ["GET", "POST", "GET", "PATCH"]


def test_5xx_is_retried_with_backoff(repos: Repos, fake_github: FakeGitHub, settings: Settings) -> None:
    edit(repos)
    sleeps: list[float] = []
    fake_github.fail("GET", r".*/pulls", 502)
    result = publish(repos, settings, client(settings, sleeps))
    assert result.created
    assert len(sleeps) == 1
    assert 1.0 <= sleeps[0] <= 1.25
    assert fake_github.count("GET", r".*/pulls") == 2


def test_secondary_rate_limit_honours_retry_after(repos: Repos, fake_github: FakeGitHub, settings: Settings) -> None:
    edit(repos)
    sleeps: list[float] = []
    fake_github.fail("POST", r".*/pulls", 403, headers={"Retry-After": "7"},
                     message="You have exceeded a secondary rate limit. Please wait a few minutes.")
    result = publish(repos, settings, client(settings, sleeps))
    assert result.created
    assert sleeps == [7.0]
    assert fake_github.count("POST", r".*/pulls") == 2
    assert len(fake_github.pulls(FULL_NAME)) == 1


def test_rate_limit_waits_until_x_ratelimit_reset(repos: Repos, fake_github: FakeGitHub, settings: Settings) -> None:
    edit(repos)
    sleeps: list[float] = []
    now = 1_900_000_000.0
    fake_github.fail("GET", r".*/repos/acme/widgets", 403, message="API rate limit exceeded",
                     headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(now) + 30)})
    result = publish(repos, settings, client(settings, sleeps, clock=lambda: now))
    assert result.created
    assert sleeps == [31.0]


def test_secondary_rate_limit_without_headers_waits_a_minute(
    repos: Repos, fake_github: FakeGitHub, settings: Settings
) -> None:
    edit(repos)
    sleeps: list[float] = []
    fake_github.fail("GET", r".*/pulls", 403, message="You have exceeded a secondary rate limit.")
    assert publish(repos, settings, client(settings, sleeps)).created
    assert sleeps == [60.0]


def test_a_wait_longer_than_the_limit_fails_at_once_and_pushes_nothing(
    repos: Repos, fake_github: FakeGitHub, settings: Settings
) -> None:
    edit(repos)
    sleeps: list[float] = []
    fake_github.fail("GET", r".*/pulls", 403, headers={"Retry-After": "3600"}, message="secondary rate limit")
    with pytest.raises(GitHubError, match="3600s") as info:
        publish(repos, settings, client(settings, sleeps))
    assert info.value.retryable
    assert sleeps == []
    assert BRANCH not in repos.remote_branches()


def test_bad_credentials_fail_before_anything_is_pushed(
    repos: Repos, fake_github: FakeGitHub, make_settings: Callable[..., Settings]
) -> None:
    edit(repos)
    bad = make_settings(github_token="ghp_wrong", github_api_url=fake_github.api_url)
    sleeps: list[float] = []
    with pytest.raises(GitHubError, match="rejected the token") as info:
        publish(repos, bad, client(bad, sleeps))
    assert info.value.status == 401
    assert not info.value.retryable
    assert sleeps == []
    assert "ghp_wrong" not in str(info.value)
    assert BRANCH not in repos.remote_branches()


def test_missing_remote_is_a_clear_input_error(tmp_path: Path, settings: Settings) -> None:
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    git(lonely, "init", "-q", "-b", "main")
    (lonely / "a.txt").write_text("a\n")
    git(lonely, "add", "-A")
    git(lonely, "commit", "-q", "-m", "one")
    (lonely / "a.txt").write_text("b\n")
    with pytest.raises(InputError, match="no git remote"):
        publish_pull_request(lonely, title="T", body="", settings=settings, github_repo=FULL_NAME)


def test_not_a_repository_is_a_clear_input_error(tmp_path: Path, settings: Settings) -> None:
    with pytest.raises(InputError, match="not a git repository"):
        publish_pull_request(tmp_path, title="T", body="", settings=settings)


def test_nothing_to_commit_is_a_return_value_and_touches_nothing(
    repos: Repos, fake_github: FakeGitHub, settings: Settings
) -> None:
    result = publish(repos, settings, client(settings), base="main")
    assert result.nothing_to_commit
    assert result.number is None
    assert not result.pushed
    assert set(repos.remote_branches()) == {"main"}
    assert fake_github.calls == []


def test_committed_but_unpushed_work_is_published(repos: Repos, fake_github: FakeGitHub, settings: Settings) -> None:
    edit(repos)
    git(repos.work, "add", "-A")
    git(repos.work, "commit", "-q", "-m", "local work")
    result = publish(repos, settings, client(settings))
    assert result.created
    assert repos.remote_branches()[BRANCH] == git(repos.work, "rev-parse", "HEAD")


def test_missing_base_branch_is_an_input_error_and_nothing_is_pushed(
    repos: Repos, fake_github: FakeGitHub, settings: Settings
) -> None:
    edit(repos)
    with pytest.raises(InputError, match="'release' does not exist"):
        publish(repos, settings, client(settings), base="release")
    assert set(repos.remote_branches()) == {"main"}
    assert fake_github.pulls(FULL_NAME) == []


def test_explicit_base_targets_that_branch(repos: Repos, fake_github: FakeGitHub, settings: Settings) -> None:
    git(repos.work, "push", "-q", "origin", "main:release")
    edit(repos)
    result = publish(repos, settings, client(settings), base="release")
    assert result.base == "release"
    assert fake_github.pulls(FULL_NAME)[0]["base"] == "release"
    assert fake_github.count("GET", r".*/repos/acme/widgets") == 0  # no metadata needed


def test_hook_rejection_is_reported_and_the_next_run_finishes(
    repos: Repos, fake_github: FakeGitHub, settings: Settings
) -> None:
    hook = repos.remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'policy: pushes are frozen today' >&2\nexit 1\n")
    hook.chmod(0o755)
    edit(repos)
    with pytest.raises(GitHubError, match="pushes are frozen today"):
        publish(repos, settings, client(settings))
    assert BRANCH not in repos.remote_branches()
    assert fake_github.pulls(FULL_NAME) == []
    hook.unlink()
    assert publish(repos, settings, client(settings)).created


def test_non_fast_forward_rejection_is_reported(repos: Repos, fake_github: FakeGitHub, settings: Settings) -> None:
    edit(repos)
    publish(repos, settings, client(settings))
    git(repos.remote, "config", "receive.denyNonFastForwards", "true")
    edit(repos, "print('other')\n")
    with pytest.raises(GitHubError, match="non-fast-forward"):
        publish(repos, settings, client(settings))
    assert fake_github.pulls(FULL_NAME)[0]["body"].startswith("Adds the flag.")


def test_lease_protects_against_a_concurrent_push(
    repos: Repos, fake_github: FakeGitHub, settings: Settings, tmp_path: Path
) -> None:
    edit(repos)
    publish(repos, settings, client(settings))
    # Another writer moves the branch between our read of the remote and our push.
    other = git(repos.work, "rev-parse", "main")
    wrapper = tmp_path / "racing-receive-pack"
    wrapper.write_text(f"#!/bin/sh\ngit --git-dir=\"$1\" update-ref refs/heads/{BRANCH} {other}\n"
                       "exec git-receive-pack \"$@\"\n")
    wrapper.chmod(0o755)
    git(repos.work, "config", "remote.origin.receivepack", str(wrapper))
    edit(repos, "print('racing')\n")
    with pytest.raises(GitHubError, match="lease") as info:
        publish(repos, settings, client(settings))
    assert info.value.retryable
    assert repos.remote_branches()[BRANCH] == other  # the other writer's push was not overwritten
    git(repos.work, "config", "--unset", "remote.origin.receivepack")
    assert publish(repos, settings, client(settings)).pushed


def test_draft_policy_and_ready_for_review(repos: Repos, fake_github: FakeGitHub, settings: Settings) -> None:
    edit(repos)
    publish(repos, settings, client(settings), tests_passed=False)
    assert fake_github.pulls(FULL_NAME)[0]["draft"] is True
    fake_github.reset_calls()
    publish(repos, settings, client(settings), tests_passed=True)
    assert fake_github.pulls(FULL_NAME)[0]["draft"] is False
    assert [c.path for c in fake_github.calls] == ["/api/v3/repos/acme/widgets/pulls", "/api/graphql"]
    assert fake_github.calls[1].body["variables"]["input"] == {"pullRequestId": "PR_node_1"}


def test_draft_policy_can_be_switched_off(
    repos: Repos, fake_github: FakeGitHub, make_settings: Callable[..., Settings]
) -> None:
    relaxed = make_settings(github_token=TOKEN, github_api_url=fake_github.api_url, pr_draft_on_failure=False)
    edit(repos)
    publish(repos, relaxed, client(relaxed), tests_passed=False)
    assert fake_github.pulls(FULL_NAME)[0]["draft"] is False


def test_the_token_never_lands_in_git_config_remote_urls_logs_or_the_body(
    repos: Repos, fake_github: FakeGitHub, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    edit(repos)
    publish(repos, settings, client(settings), body=f"The model echoed {TOKEN} here.")
    body = fake_github.pulls(FULL_NAME)[0]["body"]
    assert TOKEN not in body
    assert "[REDACTED]" in body  # vibe.redact.MASK, the one mask
    assert TOKEN not in (repos.work / ".git" / "config").read_text()
    assert TOKEN not in (repos.remote / "config").read_text()
    assert TOKEN not in git(repos.work, "remote", "-v")
    assert TOKEN not in caplog.text
    assert caplog.text  # the run did log (PyGithub and ours), just never the token


def test_a_pr_of_another_key_on_the_branch_is_refused(
    repos: Repos, fake_github: FakeGitHub, settings: Settings
) -> None:
    edit(repos)
    publish(repos, settings, client(settings))
    fake_github.repos[FULL_NAME].pulls[1]["body"] = "hijacked\n\n" + marker("someone-else")
    with pytest.raises(InputError, match="another key"):
        publish(repos, settings, client(settings))


def test_linked_worktree_as_source(repos: Repos, fake_github: FakeGitHub, settings: Settings, tmp_path: Path) -> None:
    tree = tmp_path / "pipeline-worktree"
    git(repos.work, "worktree", "add", "-q", "--detach", str(tree), "main")
    (tree / "generated.py").write_text("GENERATED = True\n")
    result = publish(repos, settings, client(settings), source=tree)
    assert result.created
    assert repos.show(BRANCH, "generated.py") == "GENERATED = True"
    assert not (repos.work / "generated.py").exists()


def test_unrelated_source_is_refused(repos: Repos, settings: Settings, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    with pytest.raises(InputError, match="not a working tree of the repository"):
        publish(repos, settings, None, source=other)


def test_owner_and_name_come_from_the_origin_url_and_the_token_rides_in_an_extra_header(
    repos: Repos, fake_github: FakeGitHub, settings: Settings
) -> None:
    # origin points at the fake's smart-HTTP git endpoint, as a real clone of github.com would.
    git(repos.work, "remote", "set-url", "origin", fake_github.git_url(FULL_NAME))
    edit(repos)
    result = publish(repos, settings, client(settings), github_repo=None)

    assert result.created
    assert BRANCH in repos.remote_branches()
    assert fake_github.git_authorizations
    assert all(a is not None for a in fake_github.git_authorizations)
    assert TOKEN not in (repos.work / ".git" / "config").read_text()
    assert TOKEN not in git(repos.work, "remote", "-v")


def test_without_a_token_git_over_https_fails_cleanly(
    repos: Repos, fake_github: FakeGitHub, make_settings: Callable[..., Settings]
) -> None:
    git(repos.work, "remote", "set-url", "origin", fake_github.git_url(FULL_NAME))
    edit(repos)
    with pytest.raises(GitHubError, match="authentication failed"):
        publish_pull_request(repos.work, title="T", body="", key=KEY, settings=make_settings(), base="main")


def test_owner_and_name_required_when_origin_is_not_github_like(
    repos: Repos, fake_github: FakeGitHub, settings: Settings
) -> None:
    edit(repos)
    git(repos.work, "remote", "set-url", "origin", "/srv/git/")
    with pytest.raises(InputError, match="--github-repo"):
        publish(repos, settings, client(settings), github_repo=None)


def test_branch_names_are_stable_and_distinct() -> None:
    assert branch_for("add-verbose-flag") == "vibe/add-verbose-flag"
    assert branch_for("Add a --verbose flag") == branch_for("Add a --verbose flag")
    assert branch_for("Add a --verbose flag").startswith("vibe/add-a-verbose-flag-")
    assert branch_for("Add X") != branch_for("add-x")
    assert branch_for("../../etc") .startswith("vibe/etc-")


def test_no_local_hook_runs_with_the_token_in_its_environment(
    repos: Repos, fake_github: FakeGitHub, settings: Settings, tmp_path: Path
) -> None:
    git(repos.work, "remote", "set-url", "origin", fake_github.git_url(FULL_NAME))
    dump = tmp_path / "hook-env.txt"
    for name in ("pre-push", "reference-transaction", "post-checkout"):
        hook = repos.work / ".git" / "hooks" / name
        hook.write_text(f"#!/bin/sh\nenv >> '{dump}'\ncat >/dev/null\nexit 0\n")
        hook.chmod(0o755)
    edit(repos)
    assert publish(repos, settings, client(settings), github_repo=None).created
    assert not dump.exists() or TOKEN not in dump.read_text()
    assert not dump.exists() or "GIT_CONFIG_VALUE" not in dump.read_text()


def test_a_closed_pr_is_history_and_the_next_run_opens_a_fresh_one(
    repos: Repos, fake_github: FakeGitHub, settings: Settings
) -> None:
    edit(repos)
    publish(repos, settings, client(settings))
    fake_github.repos[FULL_NAME].pulls[1]["state"] = "closed"
    result = publish(repos, settings, client(settings), body="Try again.")
    assert result.created
    assert result.number == 2
    assert [p["state"] for p in fake_github.pulls(FULL_NAME)] == ["closed", "open"]
