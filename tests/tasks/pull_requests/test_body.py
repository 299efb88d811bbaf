"""The rendered PR body and its hidden marker."""

from __future__ import annotations

from tasks.pull_requests import marker, marker_key, render_pr_body
from tasks.pull_requests.body import with_marker
from vibe.redact import MASK, redact


def test_body_has_request_summary_tests_model_tokens_cost_and_marker() -> None:
    body = render_pr_body(
        request="Add a --verbose flag\nthat prints more",
        summary="Adds `--verbose` to the CLI.",
        tests_markdown="| test | outcome |\n| --- | --- |\n| test_cli | passed |",
        model="claude-sonnet-4",
        tokens=12345,
        cost_usd=0.0421,
        key="req-42",
    )
    assert "> Add a --verbose flag\n> that prints more" in body
    assert "Adds `--verbose` to the CLI." in body
    assert "| test_cli | passed |" in body
    assert "| `claude-sonnet-4` | 12,345 | $0.0421 |" in body
    assert body.endswith(marker("req-42"))
    assert marker_key(body) == "req-42"


def test_body_without_tests_or_costs_says_so() -> None:
    body = render_pr_body(request="r", summary="", tests_markdown=None, model=None, tokens=None, cost_usd=None,
                          key="k")
    assert "_The tests were not run._" in body
    assert "| n/a | n/a | n/a |" in body


def test_huge_test_tables_are_truncated_under_githubs_limit() -> None:
    table = "\n".join(f"| test_{i} | passed |" for i in range(20_000))
    body = render_pr_body(request="r", summary="s", tests_markdown=table, model="m", tokens=1, cost_usd=0.0, key="k")
    assert len(body) < 65_536
    assert "truncated" in body
    assert marker_key(body) == "k"


def test_marker_survives_odd_keys_and_is_replaced_not_duplicated() -> None:
    key = "fix --> the <thing> & more"
    body = with_marker(with_marker("text", "old"), key)
    assert body.count("<!-- vibe-pipelines:key=") == 1
    assert marker_key(body) == key
    assert body.startswith("text")


def test_redact() -> None:
    assert redact("a SECRET b", ["SECRET", ""]) == f"a {MASK} b"
