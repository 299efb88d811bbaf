"""The one retry policy of every step: only retryable faults, and never where a lower layer retries already."""

from __future__ import annotations

import pytest
from prefect import flow, task

from tasks.step import call_step, retry_only_retryable
from vibe.errors import CacheError, ExternalError, GitHubError, InputError, ProviderError

_calls: list[str] = []
_ERRORS = (ExternalError, InputError)


@task(retries=2, retry_delay_seconds=0, retry_condition_fn=retry_only_retryable)
def _fails_once(kind: str) -> str:
    _calls.append(kind)
    if len(_calls) == 1:
        errors: dict[str, Exception] = {
            "retryable": ExternalError("503 from the index store", retryable=True),
            "cache": CacheError("redis went away"),
            "permanent": ExternalError("404", retryable=False),
            "provider": ProviderError("429", provider="anthropic", retryable=True),
            "github": GitHubError("502", retryable=True),
            "input": InputError("bad path"),
        }
        raise errors[kind]
    return "ok"


@flow
def _runner(kind: str) -> str:
    return _fails_once(kind)


@pytest.mark.parametrize(
    ("kind", "retried"),
    [("retryable", True), ("cache", True), ("permanent", False), ("provider", False), ("github", False),
     ("input", False)],
)
def test_only_retryable_faults_that_no_lower_layer_retries_are_retried(
    prefect_harness: None, kind: str, retried: bool
) -> None:
    _calls.clear()
    if retried:
        assert _runner(kind) == "ok"
        assert _calls == [kind, kind]
    else:
        with pytest.raises(_ERRORS):
            _runner(kind)
        assert _calls == [kind]


def test_outside_a_flow_run_a_step_is_a_plain_call() -> None:
    _calls.clear()
    _calls.append("first call already made")  # so the task succeeds at once
    assert call_step(_fails_once, "retryable") == "ok"
