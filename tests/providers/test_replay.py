"""Replay cassettes: record through a real SDK against the fake server, replay offline, concurrent recorders."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from providers.anthropic import AnthropicProvider
from providers.base import CompletionRequest, CompletionResponse, Usage
from providers.canonical import request_digest
from providers.replay import Cassette, RecordingProvider, ReplayProvider
from tests.fakes.llm_server import FakeLLMServer, ok, status
from vibe.errors import CassetteMissError, ConfigError, ProviderError

REPO = Path(__file__).resolve().parents[2]
REQUEST = CompletionRequest.of("Add a --verbose flag to the CLI", model="claude-sonnet-4-6", max_tokens=200)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def _record(server: FakeLLMServer, cassette: Path, *requests: CompletionRequest) -> list[CompletionResponse]:
    real = AnthropicProvider(api_key=SecretStr("sk-test"), base_url=server.anthropic_base_url, timeout_s=10)
    recorder = RecordingProvider(real, cassette)
    try:
        return [await recorder.complete(r) for r in requests]
    finally:
        await recorder.aclose()


def test_recorded_answers_replay_with_the_server_gone(tmp_path: Path) -> None:
    cassette = tmp_path / "fixtures" / "demo.json"
    with FakeLLMServer() as server:
        server.enqueue(ok("def main(verbose: bool = False): ...", usage=(40, 12)))
        [recorded] = run(_record(server, cassette, REQUEST))
        assert server.calls() == 1
    # The server is stopped: only the cassette can answer now.
    replayed = run(ReplayProvider(cassette, "anthropic").complete(REQUEST))
    assert replayed.text == recorded.text == "def main(verbose: bool = False): ..."
    assert replayed.provider == "anthropic"
    assert replayed.model == "anthropic:claude-sonnet-4-6"
    assert replayed.usage == Usage(input_tokens=40, output_tokens=12)
    assert (replayed.attempts, replayed.cached) == (1, False)


def test_cassette_is_readable_json_keyed_by_the_canonical_digest(tmp_path: Path) -> None:
    cassette = tmp_path / "demo.json"
    with FakeLLMServer() as server:
        run(_record(server, cassette, REQUEST))
    text = cassette.read_text()
    assert "\n  " in text  # indented for people reviewing a diff of it
    data = json.loads(text)
    assert data["version"] == 1
    digest = request_digest(REQUEST, "anthropic:claude-sonnet-4-6")
    entry = data["entries"][digest]
    assert entry["request"]["model"] == "anthropic:claude-sonnet-4-6"
    assert entry["request"]["messages"] == [{"role": "user", "content": "Add a --verbose flag to the CLI"}]
    assert entry["response"]["text"] == "echo: Add a --verbose flag to the CLI"
    assert "sk-test" not in text
    assert not list(tmp_path.glob("*.tmp"))


def test_a_missing_entry_says_what_was_asked_and_how_to_record_it(tmp_path: Path) -> None:
    cassette = tmp_path / "demo.json"
    with FakeLLMServer() as server:
        run(_record(server, cassette, REQUEST))
    other = CompletionRequest.of("Refactor the queue manager " + "x" * 100, model="claude-sonnet-4-6")
    with pytest.raises(CassetteMissError) as info:
        run(ReplayProvider(cassette, "anthropic").complete(other))
    message = str(info.value)
    assert isinstance(info.value, ConfigError)
    assert "anthropic:claude-sonnet-4-6" in message
    assert ("Refactor the queue manager " + "x" * 33) in message
    assert "x" * 34 not in message  # the prompt is cut at 60 characters
    assert request_digest(other, "anthropic:claude-sonnet-4-6") in message
    assert "VIBE_REPLAY=record" in message
    assert str(cassette) in message


def test_any_change_to_the_request_is_a_different_entry(tmp_path: Path) -> None:
    cassette = tmp_path / "demo.json"
    with FakeLLMServer() as server:
        run(_record(server, cassette, REQUEST))
    replay = ReplayProvider(cassette, "anthropic")
    for changed in (
        REQUEST.model_copy(update={"max_tokens": 201}),
        REQUEST.model_copy(update={"system": "be brief"}),
        REQUEST.model_copy(update={"model": "claude-haiku-4-6"}),
    ):
        with pytest.raises(CassetteMissError):
            run(replay.complete(changed))
    with pytest.raises(CassetteMissError):
        run(ReplayProvider(cassette, "openai").complete(REQUEST))


def test_failures_are_not_recorded(tmp_path: Path) -> None:
    cassette = tmp_path / "demo.json"
    with FakeLLMServer() as server:
        server.enqueue(status(500))
        with pytest.raises(ProviderError):
            run(_record(server, cassette, REQUEST))
    assert not cassette.exists()


def test_replay_sees_entries_another_process_added_after_it_first_read(tmp_path: Path) -> None:
    cassette = tmp_path / "demo.json"
    first = CompletionRequest.of("first", model="m")
    second = CompletionRequest.of("second", model="m")
    Cassette(cassette).put(first, "replay:m", CompletionResponse(text="one", provider="replay", model="replay:m"))
    replay = ReplayProvider(cassette, "replay")
    assert run(replay.complete(first)).text == "one"
    with pytest.raises(CassetteMissError):
        run(replay.complete(second))
    # Written by "someone else": a separate process, so no in-process cache can be shared.
    _put_in_subprocess(cassette, "second", "two")
    assert run(replay.complete(second)).text == "two"


def test_a_corrupt_cassette_is_a_clear_config_error(tmp_path: Path) -> None:
    cassette = tmp_path / "demo.json"
    cassette.write_text('{"entries": ')
    with pytest.raises(ConfigError, match="not valid JSON"):
        run(ReplayProvider(cassette, "anthropic").complete(REQUEST))
    cassette.write_text('{"version": 7, "entries": {}}')
    with pytest.raises(ConfigError, match="version-1"):
        run(ReplayProvider(cassette, "anthropic").complete(REQUEST))


@pytest.mark.slow
def test_two_processes_recording_at_once_keep_every_entry(llm_server: FakeLLMServer, tmp_path: Path) -> None:
    cassette = tmp_path / "shared.json"
    per_process = 15
    script = textwrap.dedent(
        """
        import asyncio, sys
        from pathlib import Path
        from pydantic import SecretStr
        from providers.anthropic import AnthropicProvider
        from providers.base import CompletionRequest
        from providers.replay import RecordingProvider

        async def main(base_url: str, cassette: str, tag: str, n: int) -> None:
            real = AnthropicProvider(api_key=SecretStr("sk-test"), base_url=base_url, timeout_s=30)
            # Start recording together: both processes are imported and ready before either writes.
            Path(cassette + f".{tag}.ready").touch()
            while not Path(cassette + ".go").exists():
                await asyncio.sleep(0.01)
            recorder = RecordingProvider(real, Path(cassette))
            for i in range(n):
                await recorder.complete(CompletionRequest.of(f"{tag} prompt {i}", model="claude-x"))
            await recorder.aclose()

        asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, llm_server.anthropic_base_url, str(cassette), tag, str(per_process)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        for tag in ("alpha", "beta")
    ]
    deadline = time.monotonic() + 120
    while not all(Path(f"{cassette}.{tag}.ready").exists() for tag in ("alpha", "beta")):
        assert time.monotonic() < deadline, "the recording processes did not start"
        assert all(p.poll() is None for p in procs), "a recording process died during start-up"
        time.sleep(0.05)
    Path(f"{cassette}.go").touch()
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert llm_server.calls() == 2 * per_process
    entries = json.loads(cassette.read_text())["entries"]
    prompts = sorted(e["request"]["messages"][0]["content"] for e in entries.values())
    assert prompts == sorted(f"{tag} prompt {i}" for tag in ("alpha", "beta") for i in range(per_process))
    replay = ReplayProvider(cassette, "anthropic")
    answer = run(replay.complete(CompletionRequest.of("beta prompt 7", model="claude-x")))
    assert answer.text == "echo: beta prompt 7"


def _put_in_subprocess(cassette: Path, prompt: str, text: str) -> None:
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from providers.base import CompletionRequest, CompletionResponse
        from providers.replay import Cassette

        request = CompletionRequest.of(sys.argv[2], model="m")
        Cassette(Path(sys.argv[1])).put(
            request, "replay:m", CompletionResponse(text=sys.argv[3], provider="replay", model="replay:m")
        )
        """
    )
    subprocess.run(
        [sys.executable, "-c", script, str(cassette), prompt, text],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
        timeout=60,
    )


def test_a_replayed_answer_costs_nothing_and_says_what_it_would_have_cost(tmp_path: Path) -> None:
    from providers.manager import ProviderManager
    from vibe.settings import Settings

    cassette = tmp_path / "demo.json"
    with FakeLLMServer() as server:
        server.enqueue(ok("answer", usage=(1000, 500)))
        run(_record(server, cassette, REQUEST))
    settings = Settings(home=tmp_path / "home", replay="replay", cassette=cassette, cache_enabled=False,
                        model="anthropic:claude-sonnet-4-6", fallbacks=())

    async def ask() -> CompletionResponse:
        async with ProviderManager(settings) as manager:
            return await manager.complete(REQUEST.model_copy(update={"model": "anthropic:claude-sonnet-4-6"}))

    answer = run(ask())
    assert answer.text == "answer"
    assert answer.replayed is True
    assert answer.cost_usd == 0.0
    assert answer.list_cost_usd is not None
    assert answer.list_cost_usd > 0
