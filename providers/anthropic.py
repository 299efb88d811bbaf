"""`AnthropicProvider`: the Anthropic Messages API through the official `anthropic` SDK (2.x).

Translation lives in the private `_map_*` functions: `_map_request` builds the SDK call, `_map_response` reads
the reply, `_map_error` turns every SDK failure into a `ProviderError`. Retries are off in the SDK
(`max_retries=0`): the ProviderManager owns them, so one `complete()` is exactly one HTTP request.

Two vendor facts shape the request:
- API version 2026-10-21 (the default of SDK 2.x) rejects `temperature`, `top_p` and `top_k` with a 400, even
  at their default values, so `CompletionRequest.temperature` is not sent to Anthropic.
- The Messages API has no "any JSON object" mode (structured outputs need a full JSON schema, which a
  `CompletionRequest` does not carry). JSON mode is therefore a system instruction, and a reply wrapped in a
  Markdown code fence is unwrapped. Tool forcing was rejected: it would turn every JSON request into a tool call
  and collide with the caller's own tools.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx2
from pydantic import SecretStr

from providers._http import Redactor, SdkErrors, malformed_error, map_sdk_error
from providers.base import CompletionRequest, CompletionResponse, ToolCall, Usage
from vibe.errors import ConfigError, ProviderError

JSON_INSTRUCTION = (
    "Reply with exactly one JSON object and nothing else: no prose before or after it, no Markdown code fence."
)


# Which `anthropic` exception means what, for the shared translation (`providers._http.map_sdk_error`).
_SDK_ERRORS = SdkErrors(
    validation=anthropic.APIResponseValidationError,
    status=anthropic.APIStatusError,
    timeout=anthropic.APITimeoutError,
    connection=anthropic.APIConnectionError,
    detail=lambda exc: exc.api_message or (exc.type and str(exc.type)) or _body_text(exc.body),
)


class AnthropicProvider:
    """Answers `CompletionRequest`s with Anthropic's Messages API.

    Args:
        api_key: the Anthropic API key. None lets the SDK find credentials itself (`ANTHROPIC_API_KEY`, a
            profile); the factory always passes the configured key.
        base_url: the API's base URL. None keeps the SDK's default, which honours `ANTHROPIC_BASE_URL`.
        timeout_s: seconds one HTTP request may take before it fails (retryable).
        http_client: an `httpx2.AsyncClient` to send requests with (tests, shared connection pools). It is not
            closed by `aclose()`: whoever made it closes it.

    Raises:
        ConfigError: no credentials were given and the SDK found none either.
    """

    name = "anthropic"

    def __init__(
        self,
        *,
        api_key: SecretStr | None,
        base_url: str | None,
        timeout_s: float,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        key = api_key.get_secret_value() if api_key is not None else None
        self._redact = Redactor([key])
        self._timeout_s = timeout_s
        self._owns_http_client = http_client is None
        try:
            self._client = anthropic.AsyncAnthropic(
                api_key=key,
                base_url=base_url,
                timeout=timeout_s,
                max_retries=0,  # the ProviderManager retries; SDK retries would multiply with its own
                http_client=http_client,
            )
        except anthropic.AnthropicError as exc:  # a profile or credentials file the SDK could not load
            raise ConfigError(
                f"anthropic: no usable credentials: set ANTHROPIC_API_KEY ({self._redact(str(exc))})"
            ) from exc
        client = self._client
        if client.api_key is None and client.auth_token is None and client.credentials is None:
            # Otherwise the SDK fails every request with a TypeError; say what to set instead.
            raise ConfigError("anthropic: no credentials: set ANTHROPIC_API_KEY")

    def __repr__(self) -> str:
        return f"AnthropicProvider(base_url={str(self._client.base_url)!r})"

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """Send `request` (its `model` is Anthropic's model id) and return the answer.

        Raises:
            ProviderError: the API failed; `retryable`, `status` and `retry_after` say what to do next.
        """
        try:
            message = await self._client.messages.create(**_map_request(request))
        except (anthropic.AnthropicError, json.JSONDecodeError) as exc:
            # The SDK lets json.JSONDecodeError through for an invalid JSON body.
            raise self._map_error(exc) from exc
        return _map_response(message, request, self.name, self._redact)

    async def aclose(self) -> None:
        """Close the SDK's HTTP client, unless it was injected."""
        if self._owns_http_client:
            await self._client.close()

    def _map_error(self, exc: Exception) -> ProviderError:
        """The one place where `anthropic` SDK exceptions become `ProviderError`s (by `_SDK_ERRORS`)."""
        return map_sdk_error(exc, _SDK_ERRORS, provider=self.name, timeout_s=self._timeout_s, redact=self._redact)


def _map_request(request: CompletionRequest) -> dict[str, Any]:
    system = request.system
    if request.response_format == "json":
        system = f"{system}\n\n{JSON_INSTRUCTION}" if system else JSON_INSTRUCTION
    params: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
    }
    if system:
        params["system"] = system
    if request.stop:
        params["stop_sequences"] = list(request.stop)
    if request.tools:
        params["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.input_schema} for t in request.tools
        ]
    return params


def _map_response(message: object, request: CompletionRequest, provider: str, redact: Redactor) -> CompletionResponse:
    if not isinstance(message, anthropic.types.Message):
        # The SDK hands back the raw text when the content type is not JSON (an HTML error page from a proxy).
        raise malformed_error(provider, f"not a Messages API reply: {str(message)[:200]!r}", redact)
    data = message.to_dict(mode="json", warnings=False)
    content = data.get("content")
    if not isinstance(content, list):
        raise malformed_error(provider, "reply has no `content` list", redact)
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in content:
        if not isinstance(block, dict):
            raise malformed_error(provider, "a content block is not an object", redact)
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif block.get("type") == "tool_use":
            if not isinstance(block.get("input"), dict) or not isinstance(block.get("name"), str):
                raise malformed_error(provider, "a tool_use block lacks `name` or `input`", redact)
            calls.append(ToolCall(id=str(block.get("id", "")), name=block["name"], arguments=block["input"]))
        # Other block types (thinking, server tools) carry nothing a CompletionResponse holds.
    usage = data.get("usage")
    if not isinstance(usage, dict):
        raise malformed_error(provider, "reply has no `usage`", redact)
    text = "".join(texts)
    if request.response_format == "json":
        text = unfence_json(text)
    stop_reason = data.get("stop_reason")
    return CompletionResponse(
        text=text,
        provider=provider,
        model=f"{provider}:{request.model}",
        usage=Usage(
            input_tokens=int(usage.get("input_tokens") or 0), output_tokens=int(usage.get("output_tokens") or 0)
        ),
        stop_reason=stop_reason if isinstance(stop_reason, str) else None,
        tool_calls=tuple(calls),
    )


def unfence_json(text: str) -> str:
    """The JSON inside a Markdown code fence (```json ... ```), or `text` unchanged when it is not fenced."""
    stripped = text.strip()
    if not stripped.startswith("```"):
        return text
    body = stripped[3:]
    first_newline = body.find("\n")
    if first_newline < 0 or not body.rstrip().endswith("```"):
        return text
    inner = body[first_newline + 1 :].rstrip()[:-3].strip()
    try:
        json.loads(inner)
    except ValueError:
        return text
    return inner


def _body_text(body: object) -> str | None:
    if body is None:
        return None
    return body if isinstance(body, str) else json.dumps(body)[:300]
