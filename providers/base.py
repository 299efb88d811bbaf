"""The one interface every LLM provider implements, over request/response models the project owns.

No SDK type crosses this boundary: adapters translate `CompletionRequest` into their vendor's call and the
vendor's reply into `CompletionResponse` in private `_map_*` functions.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Message(_Frozen):
    """One turn of the conversation. The system prompt is not a message: see `CompletionRequest.system`."""

    role: Literal["user", "assistant"]
    content: str


class ToolSpec(_Frozen):
    """A tool the model may call, described by a JSON schema of its input."""

    name: str
    description: str = ""
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class ToolCall(_Frozen):
    """A call the model asked for."""

    id: str
    name: str
    arguments: dict[str, Any]


class CompletionRequest(_Frozen):
    """What to ask a model.

    `model` is what the caller names: an alias or role (`smart`, `fast`) or `provider:model`. The manager
    resolves it; a provider adapter receives the request with `model` set to the vendor's own model id.
    """

    model: str
    messages: tuple[Message, ...]
    system: str | None = None
    max_tokens: int = Field(1024, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    stop: tuple[str, ...] = ()
    response_format: Literal["text", "json"] = "text"
    tools: tuple[ToolSpec, ...] = ()

    @classmethod
    def of(cls, prompt: str, **kwargs: Any) -> CompletionRequest:
        """A one-message request: `CompletionRequest.of("hello", model="fast")`."""
        return cls(messages=(Message(role="user", content=prompt),), **kwargs)


class Usage(_Frozen):
    """Tokens billed for one call."""

    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class CompletionResponse(_Frozen):
    """A model's answer.

    Attributes:
        text: the reply's text (tool calls, if any, are in `tool_calls`).
        provider: who answered (`anthropic`, `openai`, `gemini`, `xai`, `compat`, `replay`).
        model: the resolved `provider:model` id that answered.
        usage: tokens billed.
        cost_usd: the price of this call when the model's prices are known, else None.
        cached: True when the answer came from the LLM cache (then no provider was called).
        replayed: True when a replay cassette answered (no provider was called or paid: `cost_usd` is 0, and
            `list_cost_usd` says what the call would have cost live).
        list_cost_usd: the price the call would have had at the model's list prices, for replayed answers.
        attempts: provider calls this request caused (0 for a cache hit).
        stop_reason: why generation stopped, as the vendor said it (normalised where obvious).
    """

    text: str
    provider: str
    model: str
    usage: Usage = Usage()
    cost_usd: float | None = None
    cached: bool = False
    replayed: bool = False
    list_cost_usd: float | None = None
    attempts: int = 1
    stop_reason: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()


@runtime_checkable
class Provider(Protocol):
    """An LLM provider: one async call, no retries of its own (the manager owns retries)."""

    name: str

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """Answer `request` (whose `model` is the vendor's model id) or raise `vibe.errors.ProviderError`."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
