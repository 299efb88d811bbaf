"""Text embeddings through the OpenAI SDK's embeddings endpoint (OpenAI or any compatible server).

Self-contained: one small interface (`Embedder.embed(texts) -> vectors`), one adapter on the official SDK with
an injectable `httpx2.Client`, and the SDK's errors translated here, once, into `ProviderError`. Caching is the
caller's business: the code index keeps chunk vectors in its own store, keyed by `embedding_key`, so an
unchanged chunk is never embedded twice.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from typing import Protocol

import httpx2

from vibe.errors import ProviderError
from vibe.settings import Settings

# Inputs per request: well under the API's limits, few round trips.
_BATCH = 64
# Characters per input: embedding models take ~8k tokens; a chunk is capped well below this anyway.
_MAX_CHARS = 16_000
# Characters per request (all its inputs): bounds the body a server must take (~1 MB at 4 bytes a character).
_BATCH_CHARS = 256_000


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
        for batch in _batches([text[:_MAX_CHARS] or " " for text in texts]):
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
        except (ValueError, TypeError) as exc:  # the SDK's parse of a body that is no embeddings list
            raise ProviderError(f"embeddings endpoint answered a malformed body ({exc})", provider="openai",
                                retryable=False) from exc
        data = sorted(response.data or (), key=lambda item: item.index)
        if len(data) != len(batch):
            raise ProviderError(
                f"embeddings endpoint answered {len(data)} vectors for {len(batch)} inputs",
                provider="openai",
                retryable=False,
            )
        try:
            vectors = [list(item.embedding) for item in data]
        except TypeError:  # an item without its embedding
            vectors = []
        if not _well_formed(vectors):
            raise ProviderError(
                "embeddings endpoint answered malformed vectors (not numbers, not finite, or of unequal lengths)",
                provider="openai",
                retryable=False,
            )
        return vectors


def _batches(texts: list[str]) -> Iterator[list[str]]:
    """`texts` in requests of at most `_BATCH` inputs and `_BATCH_CHARS` characters (one input may be alone)."""
    batch: list[str] = []
    size = 0
    for text in texts:
        if batch and (len(batch) >= _BATCH or size + len(text) > _BATCH_CHARS):
            yield batch
            batch, size = [], 0
        batch.append(text)
        size += len(text)
    if batch:
        yield batch


def _well_formed(vectors: list[list[float]]) -> bool:
    """Every vector a non-empty list of finite numbers, all of one length."""
    if not vectors or not vectors[0]:
        return False
    length = len(vectors[0])
    return all(
        len(vector) == length
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in vector)
        for vector in vectors
    )


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
