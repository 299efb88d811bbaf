"""The prompt: a system prompt that states the edit formats, and user messages fitted to the model's window.

Context goes in by priority until the budget is spent: the request and any feedback always; then the files
the pipeline has already changed (their current content, so SEARCH text can be copied verbatim); then the
files of the top search hits (whole when they fit, else the matching snippet); then the repository map.
Tokens are estimated at 4 characters each, which over-counts code slightly: safe for fitting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from providers.base import Message

SYSTEM_PROMPT = """\
You are a senior software engineer making a focused change to a code repository.
Reply with edits only in the formats below, plus at most a few sentences of explanation. Make the smallest \
change that fully does what is asked, keep the project's style, and keep the existing tests passing; add or \
update tests when the request calls for it.

Every edit is a file path on a line of its own (relative to the repository root, nothing else on that line), \
followed by a fenced code block. The block holds EITHER the whole new content of the file (use this to create \
a file, or for small files) OR one or more SEARCH/REPLACE blocks:

path/to/file.py
```python
<<<<<<< SEARCH
exact lines copied from the current file
=======
the lines that replace them
>>>>>>> REPLACE
```

Rules:
- The SEARCH text must match the current file exactly (every space, comment and blank line) and exactly once; \
include enough surrounding lines to make it unique. Blocks apply in order.
- To create a file, send its whole content (no SEARCH/REPLACE).
- If a file's content contains a line of three backticks, fence its block with four backticks (````).
- Never edit anything under .git/, never use absolute paths or '..', never send binary content.
- If a previous reply of yours could not be applied or the tests failed, you will be told why: send new \
edits against the files as they are now (earlier edits that were applied stay applied).
"""

CHARS_PER_TOKEN = 4
# Kept free of prompt in the window besides the reply: the estimate is rough and chat formats add overhead.
_RESERVE_TOKENS = 1024


def estimate_tokens(text: str) -> int:
    """A quick upper-leaning estimate of the tokens in `text`."""
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


@dataclass(frozen=True)
class ContextFile:
    """A file (or a part of one) to show the model.

    Attributes:
        path: relative POSIX path.
        text: the file's text, or the snippet's.
        start_line: the snippet's first line (1-based); None when `text` is the whole file.
        end_line: the snippet's last line; None when `text` is the whole file.
    """

    path: str
    text: str
    start_line: int | None = None
    end_line: int | None = None

    @property
    def whole(self) -> bool:
        return self.start_line is None


@dataclass(frozen=True)
class Exchange:
    """One earlier round of the conversation: what the model replied and what we told it back."""

    reply: str
    feedback: str


def prompt_budget(context_window: int, max_output: int, *, cap: int | None = None) -> int:
    """Tokens the prompt (system + messages) may take in a model's window."""
    budget = context_window - max_output - _RESERVE_TOKENS
    if cap is not None:
        budget = min(budget, cap)
    return max(budget, 0)


def _fence_for(text: str) -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return fence


def _render_file(item: ContextFile) -> str:
    fence = _fence_for(item.text)
    body = item.text if item.text.endswith("\n") or not item.text else item.text + "\n"
    if item.whole:
        return f"{item.path}\n{fence}\n{body}{fence}\n"
    return f"{item.path} (lines {item.start_line}-{item.end_line} only)\n{fence}\n{body}{fence}\n"


def _trim_to(text: str, tokens: int) -> str:
    """`text` cut at a line boundary to about `tokens` tokens (a marker says it was cut)."""
    if estimate_tokens(text) <= tokens:
        return text
    limit = max(tokens * CHARS_PER_TOKEN - 40, 0)
    cut = text[:limit]
    if "\n" in cut:
        cut = cut[: cut.rindex("\n") + 1]
    return cut + "... (cut to fit the context window)\n"


def build_messages(
    request: str,
    *,
    budget_tokens: int,
    repo_map: str = "",
    changed: Sequence[ContextFile] = (),
    related: Sequence[ContextFile] = (),
    history: Sequence[Exchange] = (),
) -> tuple[Message, ...]:
    """The conversation to send, fitted to `budget_tokens` (which includes the system prompt).

    Args:
        request: what the user asked for.
        budget_tokens: what system prompt + messages may take (see `prompt_budget`).
        repo_map: the repository map (an outline of files and symbols).
        changed: files already changed by earlier attempts, with their current content.
        related: files or snippets from the search, best first.
        history: earlier replies and the feedback on each, oldest first; the last feedback is the newest news.

    Returns:
        Alternating user/assistant messages ending with a user message.
    """
    remaining = budget_tokens - estimate_tokens(SYSTEM_PROMPT)
    task = f"## Request\n{request.strip()}\n"
    # The newest feedback is sent in full where possible; older exchanges are dropped first when space is short.
    tail: list[Message] = []
    if history:
        last = history[-1]
        tail = [Message(role="assistant", content=last.reply), Message(role="user", content=last.feedback)]
        cost = sum(estimate_tokens(m.content) for m in tail)
        if cost > remaining // 2:
            feedback = _trim_to(last.feedback, max(remaining // 2 - estimate_tokens(last.reply), 256))
            tail[1] = Message(role="user", content=feedback)
    remaining -= estimate_tokens(task) + sum(estimate_tokens(m.content) for m in tail)
    middle: list[Message] = []
    for exchange in reversed(history[:-1]):
        pair = [Message(role="assistant", content=exchange.reply), Message(role="user", content=exchange.feedback)]
        cost = sum(estimate_tokens(m.content) for m in pair)
        if cost > remaining // 3:
            break
        middle[:0] = pair
        remaining -= cost
    sections: list[str] = []
    shown: set[str] = set()
    for group_title, items in (("Files changed so far (current content)", changed), ("Relevant code", related)):
        rendered: list[str] = []
        for item in items:
            key = f"{item.path}:{item.start_line}"
            if key in shown or (not item.whole and item.path in shown):
                continue
            text = _render_file(item)
            cost = estimate_tokens(text)
            if cost > remaining:
                continue
            rendered.append(text)
            shown.add(key if not item.whole else item.path)
            remaining -= cost
        if rendered:
            sections.append(f"## {group_title}\n\n" + "\n".join(rendered))
    if repo_map.strip() and remaining > 64:
        map_text = _trim_to(repo_map.strip() + "\n", remaining - 16)
        sections.insert(0, f"## Repository map\n{map_text}")
    first = "\n".join([*sections, task])
    return (Message(role="user", content=first), *middle, *tail)


def describe_test_failures(digest: str, *, attempt: int, max_attempts: int, pre_existing: Sequence[str] = ()) -> str:
    """Feedback after an attempt whose edits applied but whose tests failed.

    Args:
        digest: the failures.
        attempt: this attempt's number.
        max_attempts: how many there are.
        pre_existing: failing tests that failed on the base commit too: named as such, not as the edits' fault.
    """
    before = ""
    if pre_existing:
        listed = ", ".join(pre_existing[:20]) + (" ..." if len(pre_existing) > 20 else "")
        before = f"These failed before your change too (pre-existing, not caused by your edits): {listed}\n\n"
    return (
        f"Your edits were applied, but the tests fail (attempt {attempt} of {max_attempts}).\n\n"
        f"{before}{digest.strip()}\n\n"
        "Send edits that make every test pass, against the current files shown below."
    )


def describe_lost_tests(removed: Sequence[str], skipped: Sequence[str], *, attempt: int, max_attempts: int) -> str:
    """Feedback after an attempt whose suite passes only because tests that passed before no longer run."""
    parts = []
    if removed:
        parts.append("removed or no longer collected: " + ", ".join(removed[:30]))
    if skipped:
        parts.append("now skipped: " + ", ".join(skipped[:30]))
    return (
        f"Your edits were applied and the suite passes (attempt {attempt} of {max_attempts}), but tests that "
        f"passed before your change no longer run ({'; '.join(parts)}). The request does not ask to remove or "
        "change tests: restore them, and change the code so that they pass."
    )


def describe_edit_problems(problems: Sequence[str], *, attempt: int, max_attempts: int) -> str:
    """Feedback after a reply that could not be parsed or applied (nothing of it was applied)."""
    listed = "\n".join(f"- {problem}" for problem in problems)
    return (
        f"None of your edits were applied (attempt {attempt} of {max_attempts}) because of these problems:\n"
        f"{listed}\n\n"
        "Send the complete set of edits again in the required format, against the current files."
    )


def with_current_files(feedback: str, files: Sequence[ContextFile], *, budget_tokens: int) -> str:
    """Append the current content of `files` to a feedback message, as far as `budget_tokens` allows."""
    parts = [feedback.rstrip() + "\n"]
    remaining = budget_tokens - estimate_tokens(feedback)
    for item in files:
        text = _render_file(item)
        if estimate_tokens(text) > remaining:
            continue
        parts.append(text)
        remaining -= estimate_tokens(text)
    return "\n".join(parts)
