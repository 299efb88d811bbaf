"""`vibe demo` end to end in a subprocess: offline, no key, no server configured; it must say where to look."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cli.demo import CASSETTE, REQUEST, SAMPLE_REPO

pytestmark = pytest.mark.slow


def test_bundled_demo_data_is_complete() -> None:
    assert (SAMPLE_REPO / "textstats" / "stats.py").is_file()
    assert (SAMPLE_REPO / "tests" / "test_stats.py").is_file()
    assert CASSETTE.stat().st_size > 0
    assert "median" in REQUEST


def _demo_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_API_KEY") and k not in ("GITHUB_TOKEN", "REDIS_URL", "PREFECT_API_URL")
    }
    env.update(
        VIBE_HOME=str(tmp_path / "home"),
        PREFECT_HOME=str(tmp_path / "prefect"),
        # Any attempt to reach a provider would fail loudly: nothing listens on the discard port.
        ANTHROPIC_BASE_URL="http://127.0.0.1:9",
        OPENAI_BASE_URL="http://127.0.0.1:9",
        VIBE_MODEL="openai:gpt-5",  # the demo ignores this: it replays what its cassette recorded
    )
    return env


def test_without_bubblewrap_the_demo_still_runs_and_says_why(tmp_path: Path) -> None:
    from tests.flows.test_hostile_runs import _path_without_bwrap

    env = _demo_env(tmp_path)
    env["PATH"] = _path_without_bwrap(tmp_path)
    vibe = Path(sys.executable).with_name("vibe")
    proc = subprocess.run(
        [str(vibe), "demo", "--dir", str(tmp_path / "demo"), "--json"],
        env=env, capture_output=True, text=True, timeout=280, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"status": "passed"' in proc.stdout
    assert "bubblewrap" in proc.stderr
    assert "bundled cassette (trusted)" in proc.stderr


def test_vibe_demo_runs_offline_shows_the_repair_and_says_where_to_look(tmp_path: Path) -> None:
    env = _demo_env(tmp_path)
    vibe = Path(sys.executable).with_name("vibe")
    proc = subprocess.run(
        [str(vibe), "demo", "--dir", str(tmp_path / "demo")],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    out = proc.stdout
    # The cassette is keyed by the exact prompts, which depend on the index's search and repo map.
    stale = "the bundled cassette no longer matches the demo's prompts: re-record: uv run python -m tests.demo_script"
    assert "no recorded answer" not in proc.stderr, stale
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "passed after 2 attempt(s)" in out
    # Replayed answers cost nothing; what they would have cost live is shown, labelled so.
    assert re.search(r"tokens, \$0\.0000", out)
    replayed = r"2 answer\(s\) replayed from a cassette: nothing was paid; live they would have cost \$0\.\d+"
    assert re.search(replayed, out)
    assert re.search(r"attempt 1: .* 5 passed, 1 failed -> failures sent back to the model", out)
    assert re.search(r"attempt 2: .* 6 passed, 0 failed -> tests pass", out)
    assert "Where to look:" in out
    assert "prefect server start" in out

    description = Path(re.search(r"the PR description:\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    assert "median" in description.read_text()
    branch = re.search(r"main\.\.(vibe/\S+)", out).group(1)  # type: ignore[union-attr]
    remote = tmp_path / "demo" / "textstats-remote.git"
    shown = subprocess.run(
        ["git", "-C", str(remote), "show", f"{branch}:textstats/stats.py"], capture_output=True, text=True, check=True
    ).stdout
    assert "return (ordered[middle - 1] + ordered[middle]) / 2" in shown
    # The demo's own copy of the sample is untouched; the change lives on the branch.
    assert "median" not in (tmp_path / "demo" / "textstats" / "textstats" / "stats.py").read_text()
    run_id = re.search(r"the Prefect flow run:\s+([0-9a-f-]{36})", out)
    assert run_id is not None
