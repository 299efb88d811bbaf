"""The canonical form of a request: what the LLM cache and replay cassettes key on.

The key covers everything that changes the output (the resolved `provider:model`, every message, the system
prompt, every sampling parameter, tools, response format) and nothing else: never an API key, a base URL or
a timeout. The namespace `v1` changes whenever this form changes, so old entries are never misread.
"""

from __future__ import annotations

import hashlib
import json

from providers.base import CompletionRequest

KEY_VERSION = "v1"


def canonical_json(request: CompletionRequest, resolved_model: str) -> str:
    """`request` as canonical JSON (sorted keys, no whitespace) with `model` set to `resolved_model`."""
    body = request.model_dump(mode="json")
    body["model"] = resolved_model
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_digest(request: CompletionRequest, resolved_model: str) -> str:
    """SHA-256 hex digest of the canonical request."""
    return hashlib.sha256(canonical_json(request, resolved_model).encode()).hexdigest()


def cache_key(prefix: str, request: CompletionRequest, resolved_model: str) -> str:
    """The Redis key of a request: `<prefix>:llm:v1:<sha256>`."""
    return f"{prefix}:llm:{KEY_VERSION}:{request_digest(request, resolved_model)}"
