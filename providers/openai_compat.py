"""`OpenAICompatibleProvider`: OpenAI Chat Completions through the official `openai` SDK, for every vendor that
speaks it: `openai`, `gemini` and `xai` (their OpenAI-compatible endpoints) and `compat` (Ollama, vLLM, a proxy).

Translation lives in the private `_map_*` functions; vendor and model differences are data (the `quirks` of the
provider table in `models.toml`), not branches. Retries are off in the SDK (`max_retries=0`): the retry layer
owns them.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2
import openai
from pydantic import SecretStr

from providers._http import Redactor, SdkErrors, malformed_error, map_sdk_error
from providers.base import CompletionRequest, CompletionResponse, ToolCall, Usage
from providers.table import DEFAULT_QUIRKS, Quirks, provider_table
from vibe.errors import ConfigError, ProviderError

# OpenAI's finish reasons in the vocabulary the project uses (Anthropic's): see providers/README.md.
_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

# Sent as the bearer token to servers that need none (Ollama): the SDK insists on some key, and passing None
# would make it fall back to OPENAI_API_KEY and send OpenAI's key to a third party.
KEYLESS_PLACEHOLDER = "no-key"


def quirks_for(provider: str, model: str) -> Quirks:
    """The parameter quirks of `provider:model` (the provider table's `quirks`; defaults for unknown providers)."""
    row = provider_table().get(provider)
    return row.quirks_for(model) if row is not None else DEFAULT_QUIRKS


def _sdk_finds_key(provider: str) -> bool:
    row = provider_table().get(provider)
    return row is not None and row.sdk_finds_key


# Which `openai` exception means what, for the shared translation (`providers._http.map_sdk_error`).
_SDK_ERRORS = SdkErrors(
    validation=openai.APIResponseValidationError,
    status=openai.APIStatusError,
    timeout=openai.APITimeoutError,
    connection=openai.APIConnectionError,
    detail=lambda exc: _error_detail(exc.body) or exc.message,
)


class OpenAICompatibleProvider:
    """Answers `CompletionRequest`s with an OpenAI-compatible Chat Completions endpoint.

    Args:
        name: the provider this instance serves (`openai`, `gemini`, `xai`, `compat`); it names the provider
            in responses and errors and selects model quirks.
        api_key: the key sent as a bearer token. None for `openai` lets the SDK read `OPENAI_API_KEY`; for
            every other provider None sends a placeholder, never OpenAI's key.
        base_url: the endpoint, e.g. `https://api.x.ai/v1`. None (for `openai`) keeps the SDK's default, which
            honours `OPENAI_BASE_URL`.
        timeout_s: seconds one HTTP request may take before it fails (retryable).
        http_client: an `httpx2.AsyncClient` to send requests with; not closed by `aclose()`.

    Raises:
        ConfigError: `openai` without a key, and none in `OPENAI_API_KEY`.
    """

    def __init__(
        self,
        name: str,
        *,
        api_key: SecretStr | None,
        base_url: str | None,
        timeout_s: float,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        self.name = name
        key = api_key.get_secret_value() if api_key is not None else None
        if key is None and not _sdk_finds_key(name):
            key = KEYLESS_PLACEHOLDER
        self._redact = Redactor([key if key != KEYLESS_PLACEHOLDER else None])
        self._timeout_s = timeout_s
        self._owns_http_client = http_client is None
        try:
            self._client = openai.AsyncOpenAI(
                api_key=key,
                base_url=base_url,
                timeout=timeout_s,
                max_retries=0,  # the ProviderManager retries; SDK retries would multiply with its own
                http_client=http_client,
            )
        except openai.OpenAIError as exc:  # no key given and none in OPENAI_API_KEY
            raise ConfigError(f"{name}: no credentials: set OPENAI_API_KEY ({self._redact(str(exc))})") from exc

    def __repr__(self) -> str:
        return f"OpenAICompatibleProvider({self.name!r}, base_url={str(self._client.base_url)!r})"

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """Send `request` (its `model` is the vendor's model id) and return the answer.

        Raises:
            ProviderError: the API failed; `retryable`, `status` and `retry_after` say what to do next.
        """
        try:
            completion = await self._client.chat.completions.create(**_map_request(request, self.name))
        except (openai.OpenAIError, json.JSONDecodeError) as exc:
            # The SDK lets json.JSONDecodeError through for an invalid JSON body.
            raise self._map_error(exc) from exc
        return _map_response(completion, request, self.name, self._redact)

    async def aclose(self) -> None:
        """Close the SDK's HTTP client, unless it was injected."""
        if self._owns_http_client:
            await self._client.close()

    def _map_error(self, exc: Exception) -> ProviderError:
        """The one place where `openai` SDK exceptions become `ProviderError`s (by `_SDK_ERRORS`)."""
        return map_sdk_error(exc, _SDK_ERRORS, provider=self.name, timeout_s=self._timeout_s, redact=self._redact)


def _map_request(request: CompletionRequest, provider: str) -> dict[str, Any]:
    quirks = quirks_for(provider, request.model)
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    messages.extend({"role": m.role, "content": m.content} for m in request.messages)
    params: dict[str, Any] = {
        "model": request.model,
        "messages": messages,
        quirks.limit_field: request.max_tokens,
    }
    if request.temperature is not None and quirks.temperature:
        params["temperature"] = request.temperature
    if request.stop:
        params["stop"] = list(request.stop)
    if request.response_format == "json":
        params["response_format"] = {"type": "json_object"}
    if request.tools:
        params["tools"] = [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": t.input_schema},
            }
            for t in request.tools
        ]
    return params


def _map_response(
    completion: object, request: CompletionRequest, provider: str, redact: Redactor
) -> CompletionResponse:
    if not isinstance(completion, openai.types.chat.ChatCompletion):
        # The SDK hands back the raw text when the content type is not JSON (an HTML error page from a proxy).
        raise malformed_error(provider, f"not a Chat Completions reply: {str(completion)[:200]!r}", redact)
    data = completion.to_dict(mode="json", warnings=False)
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise malformed_error(provider, "reply has no `choices`", redact)
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise malformed_error(provider, "the first choice has no `message`", redact)
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise malformed_error(provider, "`message.content` is not text", redact)
    calls = tuple(_map_tool_call(call, provider, redact) for call in message.get("tool_calls") or ())
    usage = data.get("usage")
    # Some compatible servers omit usage; the call still happened, its tokens are just unknown.
    usage = usage if isinstance(usage, dict) else {}
    finish = choice.get("finish_reason")
    return CompletionResponse(
        text=content or "",
        provider=provider,
        model=f"{provider}:{request.model}",
        usage=Usage(
            input_tokens=int(usage.get("prompt_tokens") or 0), output_tokens=int(usage.get("completion_tokens") or 0)
        ),
        stop_reason=_STOP_REASONS.get(finish, finish) if isinstance(finish, str) else None,
        tool_calls=calls,
    )


def _map_tool_call(call: object, provider: str, redact: Redactor) -> ToolCall:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(call, dict) or not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise malformed_error(provider, "a tool call lacks `function.name`", redact)
    raw = function.get("arguments") or "{}"
    try:
        arguments = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as exc:
        # Models occasionally emit broken JSON here; another sample usually parses.
        raise malformed_error(provider, f"tool call arguments are not JSON: {str(raw)[:100]!r}", redact) from exc
    if not isinstance(arguments, dict):
        raise malformed_error(provider, "tool call arguments are not a JSON object", redact)
    return ToolCall(id=str(call.get("id", "")), name=function["name"], arguments=arguments)


def _error_detail(body: object) -> str | None:
    # OpenAI: {"error": {"message": ...}}; some compatible servers: {"message": ...} or [{"error": ...}] (Gemini).
    if isinstance(body, list) and body:
        body = body[0]
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
    if isinstance(body, str):
        return body
    return None
