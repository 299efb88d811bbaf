"""The model-driven localization step in the real pipeline (VIBE_LOCALIZE=on): a cheap model names the files to
change, they go whole into the edit prompt; a localization that cannot run leaves the run to the ranking."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.llm_server import prompt_of
from tests.flows.test_feature_pipeline import CORRECT_REPLY

pytestmark = pytest.mark.slow

README_TEXT = (Path(__file__).resolve().parents[2] / "cli" / "demo" / "sample-repo" / "README.md").read_text().strip()


def _is_localization(body: dict[str, Any]) -> bool:
    return "Files the search ranked for it" in prompt_of(body)


def test_the_files_the_cheap_model_names_go_whole_into_the_edit_prompt(run: Any) -> None:
    def responder(body: dict[str, Any]) -> str:
        if _is_localization(body):
            return json.dumps({"files": ["README.md", "no/such/file.py"], "symbols": []})
        return CORRECT_REPLY

    llm, settings = run(responder, localize=True, localize_model="anthropic:claude-haiku-4-5")
    summary = run.call(settings, open_pr=False)
    assert summary.status == "passed"
    assert llm.calls() == 2
    assert "Files the search ranked for it" in llm.requests[0].prompt
    edit_prompt = llm.requests[1].prompt
    assert README_TEXT in edit_prompt  # the named file, whole, ahead of the search's hits
    assert _first_relevant_file(edit_prompt) == "README.md"
    assert "no/such/file.py" not in edit_prompt  # a file that does not exist is dropped


def _first_relevant_file(prompt: str) -> str:
    section = prompt.split("Relevant code", 1)[1]
    return next(line for line in section.splitlines()[1:] if line.strip() and not line.startswith("#"))


def test_without_localization_the_ranking_leads(run: Any) -> None:
    llm, settings = run(lambda body: CORRECT_REPLY)
    assert run.call(settings, open_pr=False).status == "passed"
    assert llm.calls() == 1
    assert _first_relevant_file(llm.requests[0].prompt) != "README.md"


def test_a_localization_that_cannot_run_leaves_the_run_to_the_ranking(
    run: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    # The cheap model's provider has no key here: the localization is skipped, the edits still come.
    llm, settings = run(lambda body: CORRECT_REPLY, localize=True, localize_model="openai:gpt-5-mini")
    summary = run.call(settings, open_pr=False)
    assert summary.status == "passed"
    assert llm.calls() == 1
    assert "localization skipped" in caplog.text
