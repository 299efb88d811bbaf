"""The publish task: renders the PR body from its arguments and returns a typed result that survives JSON."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tasks.pull_requests import PullRequestResult, marker_key
from tasks.pull_requests.prefect_tasks import publish_pull_request_task
from tasks.workspace import ChangeSet
from tests.tasks.pull_requests.conftest import Repos, git
from vibe.errors import InputError
from vibe.settings import Settings

BODY_ARGS = {"request": "Say hello louder", "summary": "Louder hello.", "tests_markdown": "| ok |",
             "model": "fake:model", "tokens": 1200, "cost_usd": 0.01}


def test_the_task_publishes_the_record_with_a_rendered_body_and_a_typed_result(
    repos: Repos, make_settings: Callable[..., Settings]
) -> None:
    base = git(repos.work, "rev-parse", "HEAD")
    record = ChangeSet(base_commit=base, changes={"app.py": "print('HELLO')\n"})
    result = publish_pull_request_task.fn(repos.work, record, title="Louder", body_args=BODY_ARGS, key="louder",
                                          settings=make_settings())

    assert isinstance(result, PullRequestResult)
    assert result.local
    assert result.pushed
    assert result.branch == "vibe/louder"
    assert git(repos.remote, "show", "vibe/louder:app.py") == "print('HELLO')"
    assert result.description_path is not None
    text = result.description_path.read_text()
    assert "> Say hello louder" in text
    assert "`fake:model`" in text
    assert marker_key(text) == "louder"
    again = PullRequestResult.model_validate(json.loads(json.dumps(result.model_dump(mode="json"))))
    assert again == result


def test_the_task_refuses_both_a_body_and_body_args(repos: Repos, make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(InputError, match="not both"):
        publish_pull_request_task.fn(repos.work, title="T", body="text", body_args=BODY_ARGS,
                                     settings=make_settings())
