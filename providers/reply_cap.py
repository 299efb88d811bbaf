"""The reply size cap (`VIBE_MAX_REPLY_BYTES`): a model reply over it is refused before anything stores it.

A reply is hostile input. One of 50 MB would otherwise be written whole into the LLM cache (for the cache TTL),
into a replay cassette and into the run's journal. The cap is checked where a reply first enters the project:
by `RecordingProvider` before it writes the cassette, and by the bottom layer (`layers/calls.py`) after every
call (before the cache or a caller sees the reply). The caches also refuse entries over it (`cache.py`).
An oversize reply is a non-retryable `ProviderError` without a status: the manager fails over to the next
model, like any provider fault that sending the same request again would not fix.
"""

from __future__ import annotations

from providers.base import CompletionResponse
from vibe.errors import ProviderError

SETTING = "VIBE_MAX_REPLY_BYTES"
# The default of `Settings.max_reply_bytes`, for what is built without settings (a bare `RecordingProvider`).
DEFAULT_MAX_REPLY_BYTES = 2_000_000


def utf8_size_over(text: str, max_bytes: int) -> int | None:
    """The UTF-8 size of `text` when it is over `max_bytes`, else None (without encoding short texts)."""
    # A code point is 1 to 4 bytes: most texts are decided without encoding them.
    if len(text) * 4 <= max_bytes:
        return None
    size = len(text) if text.isascii() else len(text.encode("utf-8"))
    return size if size > max_bytes else None


def check_reply_size(response: CompletionResponse, *, model_id: str, max_bytes: int) -> None:
    """Raise when the text of `response` is over `max_bytes` (UTF-8).

    Raises:
        ProviderError: `retryable=False`, no status; the message names the model, the size, the cap and the
            variable that sets it.
    """
    size = utf8_size_over(response.text, max_bytes)
    if size is None:
        return
    raise ProviderError(
        f"{model_id} replied {size} bytes, more than the cap of {max_bytes} bytes ({SETTING}); "
        "the reply was discarded (not cached, recorded or journaled)",
        provider=response.provider,
        retryable=False,
    )
