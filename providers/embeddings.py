"""Text embeddings through the OpenAI SDK's embeddings endpoint (OpenAI or any compatible server).

Self-contained: one small interface (`Embedder.embed(texts) -> vectors`), one adapter on the official SDK with
an injectable `httpx2.Client`, and the SDK's errors translated here, once, into `ProviderError`. Caching is the
caller's business: the code index keeps chunk vectors in its own store, keyed by `embedding_key`, so an
unchanged chunk is never embedded twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

import httpx2

from vibe.errors import ProviderError
from vibe.settings import Settings

# Inputs per request: well under the API's limits, few round trips.
_BATCH = 64
# Characters per input: embedding models take ~8k tokens; a chunk is capped well below this anyway.
_MAX_CHARS = 16_000


class Embedder(Protocol):
    """Turns texts into vectors; `model` names the model (it is part of every cache key)."""

    model: str

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order."""
        ...


def embedding_key(model: str, text: str) -> str:
    """A cache key for `text`'s vector under `model` (versioned namespace)."""
    digest = hashlib.sha256(f"{model}\0{text}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"emb:v1:{digest}"


class OpenAIEmbedder:
    """Embeddings from `/embeddings` of OpenAI or an OpenAI-compatible server (Ollama, vLLM, a proxy).

    Args:
        model: the embedding model (e.g. `text-embedding-3-small`).
        api_key: the key; compatible servers that need none get a placeholder.
        base_url: the endpoint (None: `OPENAI_BASE_URL` or the SDK's default).
        timeout_s: per request.
        http_client: an injected client (tests, proxies).
    """

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout_s: float = 60.0,
        http_client: httpx2.Client | None = None,
    ) -> None:
        import openai

        self.model = model
        self._client = openai.OpenAI(
            api_key=api_key or "not-needed",
            base_url=base_url,
            timeout=timeout_s,
            max_retries=0,  # callers degrade to lexical search instead of waiting on retries
            http_client=http_client,
        )

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order.

        Raises:
            ProviderError: the endpoint failed (retryable for timeouts, 408, 409, 429 and 5xx).
        """
        vectors: list[list[float]] = []
        for start in range(0, len(texts), _BATCH):
            batch = [text[:_MAX_CHARS] or " " for text in texts[start : start + _BATCH]]
            vectors.extend(self._request(batch))
        return vectors

    def _request(self, batch: list[str]) -> list[list[float]]:
        import openai

        try:
            response = self._client.embeddings.create(model=self.model, input=batch)
        except openai.APIStatusError as exc:
            status = exc.status_code
            raise ProviderError(
                f"embeddings request failed with HTTP {status}",
                provider="openai",
                retryable=status in (408, 409, 429) or status >= 500,
                status=status,
            ) from exc
        except openai.APIConnectionError as exc:  # includes timeouts
            raise ProviderError("embeddings endpoint unreachable", provider="openai", retryable=True) from exc
        except openai.OpenAIError as exc:
            raise ProviderError(f"embeddings request failed: {type(exc).__name__}", provider="openai",
                                retryable=False) from exc
        data = sorted(response.data, key=lambda item: item.index)
        if len(data) != len(batch):
            raise ProviderError(
                f"embeddings endpoint answered {len(data)} vectors for {len(batch)} inputs",
                provider="openai",
                retryable=False,
            )
        return [list(item.embedding) for item in data]


def embedder_from_settings(settings: Settings, *, http_client: httpx2.Client | None = None) -> OpenAIEmbedder | None:
    """The configured embedder, or None when `embedding_model` is not set (search stays lexical)."""
    if not settings.embedding_model:
        return None
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    return OpenAIEmbedder(
        settings.embedding_model,
        api_key=key,
        base_url=settings.embedding_base_url or settings.openai_base_url,
        timeout_s=min(settings.llm_timeout_s, 60.0),
        http_client=http_client,
    )
