"""Pull-request descriptions: the rendered body and the hidden marker that identifies a PR (redaction: vibe.redact).

The marker is an HTML comment GitHub does not display: `<!-- vibe-pipelines:key=<percent-encoded key> -->`.
Percent-encoding keeps any key (even one containing `-->`) inside the comment.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

_MARKER_RE = re.compile(r"<!-- vibe-pipelines:key=([^\s>]*) -->")
# GitHub rejects bodies over 65536 characters; leave room for the marker and the truncation note.
_MAX_BODY_CHARS = 60_000


def marker(key: str) -> str:
    """The hidden marker identifying the pull request of `key`."""
    return f"<!-- vibe-pipelines:key={quote(key, safe='')} -->"


def marker_key(body: str) -> str | None:
    """The key in `body`'s marker, or None when it carries none."""
    found = _MARKER_RE.search(body or "")
    return unquote(found.group(1)) if found else None


def with_marker(body: str, key: str) -> str:
    """`body` with exactly one marker, for `key`, at its end (any other marker is removed)."""
    text = _MARKER_RE.sub("", body or "").rstrip()
    return f"{text}\n\n{marker(key)}" if text else marker(key)


def render_pr_body(
    *,
    request: str,
    summary: str,
    tests_markdown: str | None,
    model: str | None,
    tokens: int | None,
    cost_usd: float | None,
    key: str,
) -> str:
    """The description of a pipeline's pull request.

    Args:
        request: what the user asked for, quoted at the top.
        summary: a summary of the change.
        tests_markdown: the test results table (markdown), or None when tests did not run.
        model: the model that wrote the change.
        tokens: tokens used by the run.
        cost_usd: the run's cost in US dollars.
        key: the request's stable key, recorded in the hidden marker.

    Returns:
        Markdown ending with the hidden marker; long test tables are truncated to fit GitHub's limit.
    """
    quoted = "\n".join(f"> {line}" if line else ">" for line in (request.strip() or "(no request text)").splitlines())
    tests = (tests_markdown or "").strip() or "_The tests were not run._"
    fixed = len(quoted) + len(summary) + 1000
    if fixed + len(tests) > _MAX_BODY_CHARS:
        keep = max(_MAX_BODY_CHARS - fixed, 0)
        tests = tests[:keep].rsplit("\n", 1)[0] + "\n\n_(test results truncated to fit GitHub's size limit)_"
    tokens_text = f"{tokens:,}" if tokens is not None else "n/a"
    cost_text = f"${cost_usd:.4f}" if cost_usd is not None else "n/a"
    model_text = f"`{model}`" if model else "n/a"
    sections = [
        "## Request",
        quoted,
        "## Summary",
        summary.strip() or "_No summary._",
        "## Tests",
        tests,
        "## Model",
        "| Model | Tokens | Cost |\n| --- | ---: | ---: |\n" + f"| {model_text} | {tokens_text} | {cost_text} |",
        "<sub>Opened by vibe-pipelines. Running the same request again updates this pull request.</sub>",
    ]
    return with_marker("\n\n".join(sections), key)
