from __future__ import annotations

from pathlib import Path

import pytest

from tasks.codegen.budget import Budget
from tasks.codegen.generate import prompt_tokens_for
from tasks.codegen.prompt import (
    SYSTEM_PROMPT,
    ContextFile,
    Exchange,
    build_messages,
    estimate_tokens,
    prompt_budget,
)
from tasks.pipeline.journal import RunJournal, request_key
from tasks.testing.report import normalise_output
from vibe.errors import BudgetExceededError, InputError


def test_system_prompt_states_both_edit_formats() -> None:
    for marker in ("<<<<<<< SEARCH", "=======", ">>>>>>> REPLACE", "whole new content", ".git/"):
        assert marker in SYSTEM_PROMPT


def test_context_is_fitted_to_the_window_by_priority() -> None:
    big = ContextFile(path="big.py", text="x = 1\n" * 4000)
    small = ContextFile(path="small.py", text="y = 2\n")
    snippet = ContextFile(path="huge.py", text="def f():\n    pass\n", start_line=10, end_line=11)
    budget = estimate_tokens(SYSTEM_PROMPT) + 600
    (message,) = build_messages("Add z", budget_tokens=budget, repo_map="m\n" * 5000, related=[big, small, snippet])
    text = message.content
    assert text.endswith("## Request\nAdd z\n")
    assert "small.py\n```\ny = 2\n```" in text
    assert "huge.py (lines 10-11 only)" in text
    assert "big.py" not in text  # did not fit
    assert "(cut to fit the context window)" in text  # the map was trimmed to what was left
    assert estimate_tokens(SYSTEM_PROMPT) + estimate_tokens(text) <= budget + 50


def test_repair_rounds_keep_the_newest_feedback_and_alternate_roles() -> None:
    history = [Exchange(reply=f"reply {n}", feedback=f"feedback {n}") for n in range(1, 4)]
    messages = build_messages("Fix it", budget_tokens=10_000, history=history)
    assert [m.role for m in messages] == ["user", "assistant", "user", "assistant", "user", "assistant", "user"]
    assert messages[-1].content == "feedback 3"
    assert messages[-2].content == "reply 3"


def test_prompt_budget_comes_from_the_registry() -> None:
    assert prompt_budget(200_000, 16_000) == 200_000 - 16_000 - 1024
    assert prompt_budget(8_000, 16_000) == 0
    assert prompt_tokens_for("anthropic:claude-haiku-4-5") == 60_000  # capped below the 200k window
    assert prompt_tokens_for("compat:tiny") <= 128_000


def test_budget_stops_on_tokens_or_usd_before_the_call() -> None:
    budget = Budget(max_tokens=1000)
    budget.check(estimated_input_tokens=900)
    budget.charge("anthropic", input_tokens=600, output_tokens=100, cost_usd=0.01)
    with pytest.raises(BudgetExceededError, match="token budget reached: 700 tokens spent"):
        budget.check(estimated_input_tokens=400)
    dollars = Budget(max_usd=0.05)
    dollars.charge("openai", input_tokens=10, output_tokens=10, cost_usd=0.04)
    dollars.charge("openai", input_tokens=10, output_tokens=10, cost_usd=None)
    dollars.check(estimated_input_tokens=1000, input_price_per_mtok=3.0)
    with pytest.raises(BudgetExceededError, match="USD budget reached"):
        dollars.check(estimated_input_tokens=10_000, input_price_per_mtok=3.0)
    assert dollars.unpriced_calls == 1
    assert dollars.by_provider["openai"].calls == 2


def test_cached_calls_cost_nothing() -> None:
    budget = Budget(max_tokens=10)
    budget.charge("anthropic", input_tokens=500, output_tokens=500, cost_usd=1.0, cached=True)
    assert budget.tokens == 0
    budget.check()


def test_test_output_is_made_stable_for_the_prompt(tmp_path: Path) -> None:
    ws = tmp_path / "vibe-ws-abc" / "repo"
    text = f"{ws}/tests/test_x.py:3: AssertionError\n1 failed in 0.42s\nran in {ws}"
    assert normalise_output(text, workspace=ws) == "tests/test_x.py:3: AssertionError\n1 failed in <t>\nran in ."


def test_journal_persists_steps_across_instances(tmp_path: Path) -> None:
    key = request_key("Add a flag", tmp_path)
    assert key == request_key("  Add a flag\n", tmp_path)
    assert key != request_key("Add a flag", tmp_path / "other")
    journal = RunJournal(tmp_path / "home", key)
    journal.put("generate:1", {"reply": "x"})
    again = RunJournal(tmp_path / "home", key)
    assert again.get("generate:1") == {"reply": "x"}
    again.clear()
    assert RunJournal(tmp_path / "home", key).get("generate:1") is None
    with pytest.raises(InputError, match="invalid run key"):
        RunJournal(tmp_path, "../evil")


def test_files_shown_to_the_model_never_leave_the_tree(tmp_path: Path) -> None:
    from tasks.codegen.generate import read_context_files

    root = tmp_path / "repo"
    root.mkdir()
    (tmp_path / "secret.txt").write_text("TOKEN=abc\n")
    (root / "ok.py").write_text("A = 1\n")
    (root / "leak.txt").symlink_to(tmp_path / "secret.txt")
    (root / "outside").symlink_to(tmp_path, target_is_directory=True)
    files = read_context_files(root, ["ok.py", "leak.txt", "outside/secret.txt", "missing.py"])
    assert [f.path for f in files] == ["ok.py"]


def test_one_run_per_key_at_a_time(tmp_path: Path) -> None:
    first = RunJournal(tmp_path, "k1")
    second = RunJournal(tmp_path, "k1")
    with first.exclusive():
        first.put("generate:1", {"reply": "r"})
        with pytest.raises(InputError, match="in progress in another process"), second.exclusive():
            pass
    with second.exclusive():
        assert second.get("generate:1") == {"reply": "r"}  # re-read under the lock
