"""The model's side of the bundled demo: the replies `cli/demo/cassette.json` was recorded from.

The first reply adds `median` with a bug for even counts (and a test that catches it); the second, sent after
the failing test comes back, fixes it. `record_demo_cassette` re-records the cassette by running the real
pipeline in record mode against the fake LLM server answering with these replies:

    uv run python -m tests.demo_script
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tasks.pipeline.outcome import RunSummary

FENCE = "```"

FIRST_REPLY = f"""I'll add `median` next to `mean` and test it.

textstats/stats.py
{FENCE}python
<<<<<<< SEARCH
def word_counts(text: str) -> dict[str, int]:
=======
def median(values: Sequence[float]) -> float:
    \"\"\"The middle value of `values` (the mean of the two middle values when the count is even).\"\"\"
    if not values:
        raise ValueError("median() of an empty sequence")
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def word_counts(text: str) -> dict[str, int]:
>>>>>>> REPLACE
{FENCE}

tests/test_median.py
{FENCE}python
import pytest

from textstats.stats import median


def test_median_of_odd_count() -> None:
    assert median([3, 1, 2]) == 2


def test_median_of_even_count_is_the_mean_of_the_middle_two() -> None:
    assert median([4, 1, 3, 2]) == 2.5


def test_median_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        median([])
{FENCE}
"""

SECOND_REPLY = f"""The even case must average the two middle values.

textstats/stats.py
{FENCE}python
<<<<<<< SEARCH
    ordered = sorted(values)
    return ordered[len(ordered) // 2]
=======
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
>>>>>>> REPLACE
{FENCE}
"""


def demo_responder(body: dict[str, Any]) -> str:
    """The fake model: the buggy first reply, then the fix once the failing test is reported back."""
    from tests.fakes.llm_server import prompt_of

    return SECOND_REPLY if "the tests fail" in prompt_of(body) else FIRST_REPLY


def record_demo_cassette(cassette: Path, *, work_dir: Path) -> RunSummary:
    """Run the demo's pipeline in record mode against the fake LLM server; returns the run's summary."""
    from pydantic import SecretStr

    from cli.demo import REQUEST
    from cli.run import demo_settings, prepare_demo
    from flows.feature_pipeline import feature_pipeline
    from tests.fakes.llm_server import FakeLLMServer
    from vibe.settings import Settings, use_settings

    with FakeLLMServer(responder=demo_responder) as server:
        settings = demo_settings(Settings(home=work_dir / "home")).model_copy(
            update={
                "replay": "record",
                "cassette": cassette,
                "anthropic_api_key": SecretStr("sk-ant-fake-demo"),
                "anthropic_base_url": server.anthropic_base_url,
                "cache_enabled": False,
            }
        )
        repo, _ = prepare_demo(settings, where=work_dir / "demo")
        with use_settings(settings):
            summary = feature_pipeline.fn(request=REQUEST, repo_path=str(repo))
    return summary


if __name__ == "__main__":
    from cli.demo import CASSETTE

    CASSETTE.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        result = record_demo_cassette(CASSETTE, work_dir=Path(tmp))
    CASSETTE.chmod(0o644)
    CASSETTE.with_name(f".{CASSETTE.name}.lock").unlink(missing_ok=True)
    print(result, file=sys.stderr)
    sys.exit(0 if result.status == "passed" and result.attempts == 2 else 1)
