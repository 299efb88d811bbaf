"""What a newcomer sees when something is off: one short line that names the variable or flag, never a
traceback, and exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.endswith("_API_KEY") and k not in ("GITHUB_TOKEN", "REDIS_URL", "PREFECT_API_URL", "VIBE_CASSETTE")}
    env.update({"VIBE_HOME": str(home), **extra})
    return env


def _vibe(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("VIBE_TEST_TIMEOUT_S", "inf", "VIBE_TEST_TIMEOUT_S"),
        ("VIBE_LLM_TIMEOUT_S", "inf", "VIBE_LLM_TIMEOUT_S"),
        ("VIBE_LLM_TIMEOUT_S", "nan", "VIBE_LLM_TIMEOUT_S"),
        ("REDIS_URL", "notaurl", "REDIS_URL"),
        ("VIBE_HOME", "/proc/nope", "VIBE_HOME"),
        ("VIBE_SANDBOX", "maybe", "VIBE_SANDBOX"),
    ],
)
def test_a_bad_setting_is_one_short_line_naming_the_variable(
    tmp_path: Path, variable: str, value: str, named: str
) -> None:
    proc = _vibe(_env(tmp_path / "home", **{variable: value}), "complete", "hi")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: invalid configuration: ")
    assert named in line
    assert len(line) <= 300


def test_no_key_at_all_is_said_once_and_short(tmp_path: Path) -> None:
    proc = _vibe(_env(tmp_path / "home"), "complete", "hi")
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "ANTHROPIC_API_KEY" in line
    assert line.count("VIBE_CASSETTE") == 1
    assert len(line) <= 300
    assert "Traceback" not in proc.stderr


def test_version_and_help_render_for_a_terminal(tmp_path: Path) -> None:
    env = _env(tmp_path / "home")
    version = _vibe(env, "--version")
    assert version.returncode == 0
    assert version.stdout.strip() == "0.1.0"
    helped = _vibe(env, "test", "--help").stdout
    assert "--json <bool>" not in helped
    assert "[default: HEAD]" not in helped  # the default is the working tree, uncommitted changes included


def test_vibe_run_without_a_key_says_so_before_any_work(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "app.py").write_text("def hello():\n    return 1\n")
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "x"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    proc = _vibe(_env(tmp_path / "home"), "run", "Add a --verbose flag", "--repo", str(repo), "--no-pr")
    assert proc.returncode == 2
    (line,) = [x for x in proc.stderr.strip().splitlines() if x.startswith("error:")]
    assert "no API key for any model" in line
    assert len(line) <= 300
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "home" / "index").exists()  # nothing was indexed: it was said before any work


@pytest.mark.parametrize(("args", "flag"), [(["search", "x", "-k", "0"], "-k"), (["map", "--tokens", "0"], "--tokens")])
def test_a_bad_number_names_its_flag(tmp_path: Path, args: list[str], flag: str) -> None:
    proc = _vibe(_env(tmp_path / "home"), *args)
    assert proc.returncode == 2
    assert flag in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "k must be" not in proc.stderr
    assert "max_tokens" not in proc.stderr


def test_the_cache_switch_is_read_as_the_readme_names_it(tmp_path: Path) -> None:
    off = _vibe(_env(tmp_path / "home", VIBE_CACHE="off"), "cache", "stats")
    assert off.returncode == 0, off.stderr
    assert "the cache is off (VIBE_CACHE=off)" in off.stdout
    assert "the cache is off" not in _vibe(_env(tmp_path / "home"), "cache", "stats").stdout
    bad = _vibe(_env(tmp_path / "home", VIBE_CACHE="perhaps"), "cache", "stats")
    assert bad.returncode == 2
    (line,) = bad.stderr.strip().splitlines()
    assert line.startswith("error: invalid configuration: VIBE_CACHE")


def test_the_last_line_of_vibe_test_counts_the_skipped_tests(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "pyproject.toml").write_text('[project]\nname = "sample"\nversion = "0"\n')
    (repo / "tests" / "test_a.py").write_text(
        "import pytest\n\n\ndef test_ok():\n    assert True\n\n\n"
        "@pytest.mark.skip(reason='later')\ndef test_later():\n    pass\n\n\ndef test_bad():\n    assert False\n"
    )
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "x"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    # The user's own tests, unisolated: the same outcome with or without bubblewrap on this machine.
    proc = _vibe(_env(tmp_path / "home", VIBE_SANDBOX="unsafe"), "test", str(repo))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "1 passed, 1 failed, 1 skipped"


def test_demo_help_keeps_sentences_whole(tmp_path: Path) -> None:
    helped = _vibe(_env(tmp_path / "home", COLUMNS="100"), "demo", "--help").stdout
    description = helped.split("Options:")[0].split("\n\n")[1:]
    assert description, helped
    for paragraph in description:
        lines = [line.strip() for line in paragraph.strip().splitlines()]
        # Re-wrapped to the terminal: only a paragraph's last line may stop short.
        assert all(len(line) > 60 for line in lines[:-1]), paragraph
    assert "the first attempt fails a test, the failure goes back to the model," in " ".join(helped.split())
