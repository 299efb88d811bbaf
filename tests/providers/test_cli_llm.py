"""`vibe complete` and `vibe cache stats|clear` with the real SDKs against the fake LLM server, the real Redis
(private prefix) or the embedded store in tmp_path.

Most tests invoke the Typer app in this process (each `vibe` process costs seconds on a loaded machine); the
first and the last run real `vibe` processes, as a user does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cli.llm  # noqa: F401 - registers the commands
from cli._app import app
from tests.fakes.llm_server import FakeLLMServer, prompt_of, status

SECRET = "sk-ant-test-CLI-SECRET-0042"


@pytest.fixture
def llm_server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(responder=lambda body: f"echo: {prompt_of(body)}") as server:
        yield server


@pytest.fixture
def env(llm_server: FakeLLMServer, tmp_path: Path) -> dict[str, str]:
    """A user's environment: keys, the SDKs' base URLs pointing at the fake server, no Redis, a private home."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("VIBE_", "REDIS_URL"))}
    return {
        **clean,
        "VIBE_HOME": str(tmp_path / "home"),
        "VIBE_REPLAY": "off",
        "VIBE_LLM_RETRY_BASE_S": "0.01",
        "ANTHROPIC_API_KEY": SECRET,
        "ANTHROPIC_BASE_URL": llm_server.anthropic_base_url,
        "OPENAI_API_KEY": "sk-openai-test-CLI-0042",
        "OPENAI_BASE_URL": llm_server.openai_base_url,
    }


# `vibe` in a process of its own that says at exit whether anything imported Prefect (quick commands must not).
_PROBE = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('prefect loaded' if 'prefect' in sys.modules else 'no prefect'))\n"
    "from cli import main\n"
    "sys.argv = ['vibe', *sys.argv[1:]]\n"
    "main()\n"
)


def vibe_process(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _PROBE, *args], env=env, capture_output=True, text=True, timeout=180, check=False
    )


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str


def vibe(env: dict[str, str], *args: str) -> Outcome:

    result = CliRunner().invoke(app, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Outcome(result.exit_code, result.stdout, result.stderr)


@pytest.mark.slow
def test_complete_json_then_a_cache_hit(env: dict[str, str], llm_server: FakeLLMServer) -> None:
    first = vibe_process(env, "complete", "hello there", "--model", "fast", "--fallback", "gpt", "--json")
    assert first.returncode == 0, first.stderr
    output, prefect = first.stdout.strip().splitlines()
    assert prefect == "no prefect"
    answer = json.loads(output)
    assert answer["text"] == "echo: hello there"
    assert (answer["provider"], answer["model"]) == ("anthropic", "anthropic:claude-haiku-4-5")
    assert (answer["cached"], answer["attempts"]) == (False, 1)
    assert answer["cost_usd"] > 0
    assert set(answer["usage"]) == {"input_tokens", "output_tokens"}
    second_run = vibe(env, "complete", "hello there", "--model", "fast", "--json")
    assert second_run.returncode == 0, second_run.stderr
    second = json.loads(second_run.stdout)
    assert (second["cached"], second["attempts"], second["text"]) == (True, 0, "echo: hello there")
    bypass = json.loads(vibe(env, "complete", "hello there", "--model", "fast", "--no-cache", "--json").stdout)
    assert bypass["cached"] is False
    assert llm_server.calls() == 2
    assert SECRET not in first.stdout + first.stderr


def test_complete_fails_over_and_prints_the_text(env: dict[str, str], llm_server: FakeLLMServer) -> None:
    llm_server.enqueue(*[status(503)] * 3)
    done = vibe(env, "complete", "fall over", "--model", "fast", "--fallback", "gpt", "--system", "be brief",
                "--max-tokens", "50", "--temperature", "0.2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "echo: fall over"
    assert "openai:gpt-5" in done.stderr
    assert "4 call(s)" in done.stderr
    assert llm_server.requests[-1].body["max_completion_tokens" if "max_completion_tokens" in
                                         llm_server.requests[-1].body else "max_tokens"] == 50


def test_unknown_model_and_missing_key_are_clear_errors(env: dict[str, str], llm_server: FakeLLMServer) -> None:
    unknown = vibe(env, "complete", "hi", "--model", "clever")
    assert unknown.returncode == 2
    assert "anthropic, openai" in unknown.stderr
    assert "smart" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    no_key = {k: v for k, v in env.items() if k != "ANTHROPIC_API_KEY"}
    missing = vibe(no_key, "complete", "hi", "--model", "fast", "--fallback", "fast")
    assert missing.returncode == 2
    assert "ANTHROPIC_API_KEY" in missing.stderr
    assert llm_server.calls() == 0


def test_all_models_failing_lists_each_and_shows_no_secret(env: dict[str, str], llm_server: FakeLLMServer) -> None:
    llm_server.enqueue(status(401, echo_auth=True), status(401, echo_auth=True))
    failed = vibe(env, "complete", "hi", "--model", "fast", "--fallback", "gpt")
    assert failed.returncode == 2
    assert "anthropic:claude-haiku-4-5" in failed.stderr
    assert "openai:gpt-5" in failed.stderr
    assert SECRET not in failed.stderr
    assert "sk-openai-test-CLI-0042" not in failed.stderr
    assert llm_server.calls() == 2


def test_cache_stats_and_clear_on_redis(
    env: dict[str, str], redis_url: str, redis_prefix: str, llm_server: FakeLLMServer
) -> None:
    env = {**env, "REDIS_URL": redis_url, "VIBE_CACHE_PREFIX": redis_prefix}
    for _ in range(2):
        assert vibe(env, "complete", "count me", "--model", "fast").returncode == 0
    stats = json.loads(vibe(env, "cache", "stats", "--json").stdout)
    assert stats == {"prefix": redis_prefix, "backend": "redis", "location": redis_url, "hits": 1, "misses": 1,
                     "keys": 1, "hit_rate": 0.5, "enabled": True}
    cleared = json.loads(vibe(env, "cache", "clear", "--json").stdout)
    assert cleared["deleted"] == 3  # the entry and the two counters
    human = vibe(env, "cache", "stats")
    assert "0 entries" in human.stdout
    assert "redis" in human.stdout
    assert vibe(env, "complete", "count me", "--model", "fast").returncode == 0
    assert llm_server.calls() == 2


def test_cache_commands_use_the_embedded_store_without_redis(env: dict[str, str], tmp_path: Path) -> None:
    assert vibe(env, "complete", "local", "--model", "fast").returncode == 0
    stats = json.loads(vibe(env, "cache", "stats", "--json").stdout)
    assert (stats["backend"], stats["keys"]) == ("embedded", 1)
    assert stats["location"].startswith(str(tmp_path / "home"))
