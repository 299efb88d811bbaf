"""The Anthropic and OpenAI-compatible adapters, driving the real SDKs against the fake LLM server."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
import traceback
from pathlib import Path
from typing import Any, Literal

import httpx2
import pytest
from pydantic import SecretStr

from providers._http import retry_after_seconds
from providers.anthropic import JSON_INSTRUCTION, AnthropicProvider
from providers.base import CompletionRequest, Message, Provider, ToolSpec
from providers.openai_compat import OpenAICompatibleProvider
from tests.fakes.llm_server import FakeLLMServer, hang, malformed, ok, raw, status, truncated
from vibe.errors import ConfigError, ProviderError

KEY = "sk-test-SECRETKEY-4f1c9a7e2b"
PROTOCOLS = ("anthropic", "openai")
Proto = Literal["anthropic", "openai"]


def make(protocol: Proto, server: FakeLLMServer, *, timeout_s: float = 10.0, name: str = "openai") -> Provider:
    if protocol == "anthropic":
        return AnthropicProvider(api_key=SecretStr(KEY), base_url=server.anthropic_base_url, timeout_s=timeout_s)
    return OpenAICompatibleProvider(name, api_key=SecretStr(KEY), base_url=server.openai_base_url, timeout_s=timeout_s)


def ask(provider: Provider, request: CompletionRequest):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        try:
            return await provider.complete(request)
        finally:
            await provider.aclose()

    return asyncio.run(go())


def fails(provider: Provider, request: CompletionRequest) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        ask(provider, request)
    return info.value


REQUEST = CompletionRequest.of("Write a haiku about queues", model="model-x", system="You are terse.", max_tokens=300)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_success_returns_text_usage_and_normalised_stop_reason(llm_server: FakeLLMServer, protocol: Proto) -> None:
    llm_server.enqueue(ok("Queues wait in line", usage=(12, 5)))
    response = ask(make(protocol, llm_server), REQUEST)
    assert response.text == "Queues wait in line"
    assert response.provider == protocol
    assert response.model == f"{protocol}:model-x"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (12, 5)
    assert response.stop_reason == "end_turn"
    assert response.attempts == 1
    assert not response.cached
    assert response.tool_calls == ()
    [sent] = llm_server.requests
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.prompt == "Write a haiku about queues"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_reply_text_comes_from_the_responder_when_nothing_is_queued(llm_server: FakeLLMServer, protocol: Proto) -> None:
    llm_server.responder = lambda body: f"{len(body['messages'])} messages, max {body.get('max_tokens')}"
    response = ask(make(protocol, llm_server), REQUEST)
    expected = "1 messages, max 300" if protocol == "anthropic" else "2 messages, max None"
    assert response.text == expected


def test_anthropic_request_carries_system_stop_and_tools_but_no_temperature(llm_server: FakeLLMServer) -> None:
    tool = ToolSpec(name="read_file", description="Read a file", input_schema={"type": "object", "required": ["p"]})
    request = REQUEST.model_copy(update={"stop": ("END",), "tools": (tool,), "temperature": 0.2})
    ask(make("anthropic", llm_server), request)
    body = llm_server.requests[0].body
    assert body is not None
    assert body["system"] == "You are terse."
    assert body["max_tokens"] == 300
    assert body["stop_sequences"] == ["END"]
    assert body["tools"] == [
        {"name": "read_file", "description": "Read a file", "input_schema": {"type": "object", "required": ["p"]}}
    ]
    # API version 2026-10-21 answers 400 to any temperature.
    assert "temperature" not in body


def test_openai_request_maps_system_stop_tools_and_json_mode(llm_server: FakeLLMServer) -> None:
    tool = ToolSpec(name="read_file", input_schema={"type": "object"})
    request = REQUEST.model_copy(
        update={"model": "gpt-4.1", "stop": ("END",), "tools": (tool,), "temperature": 0.2, "response_format": "json"}
    )
    llm_server.enqueue(ok('{"a": 1}'))
    response = ask(make("openai", llm_server), request)
    assert json.loads(response.text) == {"a": 1}
    body = llm_server.requests[0].body
    assert body is not None
    assert body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Write a haiku about queues"},
    ]
    assert body["stop"] == ["END"]
    assert body["temperature"] == 0.2
    assert body["response_format"] == {"type": "json_object"}
    assert body["max_completion_tokens"] == 300
    assert body["tools"] == [
        {"type": "function", "function": {"name": "read_file", "description": "", "parameters": {"type": "object"}}}
    ]


def test_openai_reasoning_models_get_no_temperature(llm_server: FakeLLMServer) -> None:
    ask(make("openai", llm_server), REQUEST.model_copy(update={"model": "gpt-5-mini", "temperature": 0.3}))
    body = llm_server.requests[0].body
    assert body is not None
    assert "temperature" not in body
    assert body["max_completion_tokens"] == 300


def test_other_compatible_servers_get_max_tokens_and_temperature(llm_server: FakeLLMServer) -> None:
    ask(make("openai", llm_server, name="xai"), REQUEST.model_copy(update={"model": "grok-4", "temperature": 0.3}))
    body = llm_server.requests[0].body
    assert body is not None
    assert body["max_tokens"] == 300
    assert body["temperature"] == 0.3
    assert "max_completion_tokens" not in body


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_tool_calls_become_tool_call_objects(llm_server: FakeLLMServer, protocol: Proto) -> None:
    llm_server.enqueue(ok("", tool_calls=[("read_file", {"path": "README.md"}), ("search", {"q": "retry"})]))
    response = ask(make(protocol, llm_server), REQUEST)
    assert [(c.name, c.arguments) for c in response.tool_calls] == [
        ("read_file", {"path": "README.md"}),
        ("search", {"q": "retry"}),
    ]
    assert all(c.id for c in response.tool_calls)
    assert response.stop_reason == "tool_use"


@pytest.mark.parametrize(("protocol", "vendor_reason", "normalised"), [
    ("anthropic", "max_tokens", "max_tokens"),
    ("anthropic", "stop_sequence", "stop_sequence"),
    ("openai", "length", "max_tokens"),
    ("openai", "content_filter", "refusal"),
])  # fmt: skip
def test_stop_reasons_use_one_vocabulary(
    llm_server: FakeLLMServer, protocol: Proto, vendor_reason: str, normalised: str
) -> None:
    llm_server.enqueue(ok("cut", stop_reason=vendor_reason))
    assert ask(make(protocol, llm_server), REQUEST).stop_reason == normalised


def test_anthropic_json_mode_is_a_system_instruction_and_fences_are_removed(llm_server: FakeLLMServer) -> None:
    llm_server.enqueue(ok('```json\n{"files": ["a.py"]}\n```'))
    response = ask(make("anthropic", llm_server), REQUEST.model_copy(update={"response_format": "json"}))
    assert json.loads(response.text) == {"files": ["a.py"]}
    body = llm_server.requests[0].body
    assert body is not None
    assert body["system"].startswith("You are terse.")
    assert JSON_INSTRUCTION in body["system"]


def test_multi_turn_conversation_keeps_roles_in_order(llm_server: FakeLLMServer) -> None:
    messages = (
        Message(role="user", content="one"),
        Message(role="assistant", content="two"),
        Message(role="user", content="three"),
    )
    ask(make("anthropic", llm_server), CompletionRequest(model="m", messages=messages))
    body = llm_server.requests[0].body
    assert body is not None
    assert [(m["role"], m["content"]) for m in body["messages"]] == [
        ("user", "one"),
        ("assistant", "two"),
        ("user", "three"),
    ]
    assert "system" not in body


# --- errors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_rate_limit_is_retryable_and_carries_retry_after(llm_server: FakeLLMServer, protocol: Proto) -> None:
    llm_server.enqueue(status(429, retry_after=7))
    error = fails(make(protocol, llm_server), REQUEST)
    assert error.retryable
    assert error.status == 429
    assert error.retry_after == 7
    assert error.provider == protocol
    assert "429" in str(error)
    assert llm_server.calls() == 1  # the SDK did not retry on its own


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_retry_after_ms_is_preferred(llm_server: FakeLLMServer, protocol: Proto) -> None:
    llm_server.enqueue(status(429, retry_after=3, retry_after_ms=1500))
    assert fails(make(protocol, llm_server), REQUEST).retry_after == 1.5


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("code", [408, 409, 500, 502, 503, 529])
def test_server_side_failures_are_retryable(llm_server: FakeLLMServer, protocol: Proto, code: int) -> None:
    llm_server.enqueue(status(code))
    error = fails(make(protocol, llm_server), REQUEST)
    assert (error.retryable, error.status) == (True, code)
    assert llm_server.calls() == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("code", [400, 401, 403, 404, 422])
def test_requests_that_cannot_succeed_are_not_retryable(llm_server: FakeLLMServer, protocol: Proto, code: int) -> None:
    llm_server.enqueue(status(code, message="model-x is not a model"))
    error = fails(make(protocol, llm_server), REQUEST)
    assert (error.retryable, error.status, error.retry_after) == (False, code, None)
    assert "model-x is not a model" in str(error)
    assert llm_server.calls() == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_timeout_is_retryable(llm_server: FakeLLMServer, protocol: Proto) -> None:
    llm_server.enqueue(hang(30))
    error = fails(make(protocol, llm_server, timeout_s=0.5), REQUEST)
    assert error.retryable
    assert error.status is None
    assert "0.5s" in str(error)
    assert llm_server.calls() == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_invalid_json_body_is_a_retryable_malformed_response(llm_server: FakeLLMServer, protocol: Proto) -> None:
    llm_server.enqueue(malformed())
    error = fails(make(protocol, llm_server), REQUEST)
    assert error.retryable
    assert "malformed" in str(error)
    assert llm_server.calls() == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    "reply",
    [
        raw(200, "<html><body>502 Bad Gateway</body></html>", content_type="text/html"),
        raw(200, '{"id": "msg_1", "type": "message", "model": "m"}'),
        raw(200, '{"id": "x", "object": "chat.completion", "choices": []}'),
        raw(200, "[1, 2, 3]"),
    ],
    ids=["html-page", "anthropic-shape-without-content", "openai-shape-without-choices", "json-array"],
)
def test_replies_missing_what_we_need_are_retryable_malformed_responses(
    llm_server: FakeLLMServer, protocol: Proto, reply: Any
) -> None:
    llm_server.enqueue(reply)
    error = fails(make(protocol, llm_server), REQUEST)
    assert error.retryable
    assert "malformed" in str(error)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_html_error_page_keeps_its_status(llm_server: FakeLLMServer, protocol: Proto) -> None:
    llm_server.enqueue(raw(502, "<html>upstream unavailable</html>", content_type="text/html"))
    error = fails(make(protocol, llm_server), REQUEST)
    assert (error.retryable, error.status) == (True, 502)
    assert "upstream unavailable" in str(error)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_truncated_body_is_retryable(llm_server: FakeLLMServer, protocol: Proto) -> None:
    llm_server.enqueue(truncated())
    error = fails(make(protocol, llm_server), REQUEST)
    assert error.retryable
    assert llm_server.calls() == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_connection_refused_is_retryable(protocol: Proto) -> None:
    server = FakeLLMServer().start()
    provider = make(protocol, server)
    server.stop()  # the port is closed now
    error = fails(provider, REQUEST)
    assert error.retryable
    assert "connection failed" in str(error)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_api_key_never_appears_in_errors_or_logs(
    llm_server: FakeLLMServer, protocol: Proto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    behaviours = [
        status(401, echo_auth=True),
        status(429, retry_after=1, echo_auth=True),
        status(500, echo_auth=True),
        status(400, echo_auth=True),
        hang(30),
        malformed(),
        truncated(),
    ]
    seen: list[str] = []
    for behaviour in behaviours:
        llm_server.enqueue(behaviour)
        error = fails(make(protocol, llm_server, timeout_s=0.5), REQUEST)
        seen += [str(error), repr(error), "".join(traceback.format_exception(error))]
    assert "credential received: Bearer [REDACTED]" in seen[0]  # the server did echo it; we removed it
    assert "HTTP Request: POST" in caplog.text  # the SDKs' debug logging was captured too
    for text in [*seen, caplog.text]:
        assert KEY not in text
    assert llm_server.calls() == len(behaviours)
    assert KEY not in repr(make(protocol, llm_server))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_sdk_base_url_environment_variables_are_honoured(
    llm_server: FakeLLMServer, protocol: Proto, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", llm_server.anthropic_base_url)
    monkeypatch.setenv("OPENAI_BASE_URL", llm_server.openai_base_url)
    provider: Provider
    if protocol == "anthropic":
        provider = AnthropicProvider(api_key=SecretStr(KEY), base_url=None, timeout_s=10)
    else:
        provider = OpenAICompatibleProvider("openai", api_key=SecretStr(KEY), base_url=None, timeout_s=10)
    assert ask(provider, REQUEST).text == "echo: Write a haiku about queues"
    assert llm_server.calls(protocol) == 1


def test_keyless_compatible_server_never_receives_the_openai_key(
    llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-must-not-leak")
    provider = OpenAICompatibleProvider("compat", api_key=None, base_url=llm_server.openai_base_url, timeout_s=10)
    assert ask(provider, REQUEST).provider == "compat"
    assert "sk-openai-must-not-leak" not in llm_server.requests[0].headers.get("authorization", "")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_injected_http_client_is_used_and_left_open(llm_server: FakeLLMServer, protocol: Proto) -> None:
    async def go() -> tuple[str, bool]:
        async with httpx2.AsyncClient(headers={"x-test-client": "injected"}) as client:
            provider: Provider
            if protocol == "anthropic":
                provider = AnthropicProvider(
                    api_key=SecretStr(KEY), base_url=llm_server.anthropic_base_url, timeout_s=10, http_client=client
                )
            else:
                provider = OpenAICompatibleProvider(
                    "openai", api_key=SecretStr(KEY), base_url=llm_server.openai_base_url, timeout_s=10,
                    http_client=client,
                )  # fmt: skip
            response = await provider.complete(REQUEST)
            await provider.aclose()
            return response.text, client.is_closed

    text, closed = asyncio.run(go())
    assert text.startswith("echo:")
    assert not closed
    assert llm_server.requests[0].headers["x-test-client"] == "injected"


# --- retry-after parsing --------------------------------------------------------------------------------


def test_retry_after_parses_seconds_milliseconds_and_http_dates() -> None:
    now = time.time()
    in_30s = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_after_seconds({"retry-after": "12"}) == 12
    assert retry_after_seconds({"retry-after": "0.25"}) == 0.25
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert 28 <= (retry_after_seconds({"retry-after": in_30s}, now=now) or 0) <= 30
    assert retry_after_seconds({"retry-after": email.utils.formatdate(now - 60, usegmt=True)}, now=now) == 0
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({"retry-after": "-3"}) is None
    assert retry_after_seconds({}) is None
    assert retry_after_seconds(None) is None


def test_no_credentials_anywhere_is_a_config_error_before_any_request(
    llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", str(tmp_path))  # no profile on disk either
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        AnthropicProvider(api_key=None, base_url=llm_server.anthropic_base_url, timeout_s=5)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAICompatibleProvider("openai", api_key=None, base_url=llm_server.openai_base_url, timeout_s=5)
    assert llm_server.calls() == 0
