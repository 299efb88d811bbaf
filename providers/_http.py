"""Helpers the SDK adapters share: which HTTP statuses are worth retrying, `retry-after` parsing, redaction.

Private to `providers/`. The SDK exceptions of both adapters are translated by one function, `map_sdk_error`,
driven by data (`SdkErrors`: which SDK class means what), in the manner of httpx's `map_exceptions`; so the
adapters cannot drift apart on retryability, redaction or wording.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from vibe.errors import ProviderError
from vibe.redact import redact

# Statuses that can succeed on a later attempt: request timeout, conflict (a concurrent request on the vendor's
# side), rate limit, and every server-side failure (Anthropic's 529 "overloaded" included).
_RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})

# Shown instead of a secret wherever one would otherwise appear.

# A reply we cannot read (invalid JSON, missing fields, the wrong content type) is usually a proxy or load
# balancer answering for the vendor during a hiccup, so it is retryable; the manager's bounded retries cap the
# cost when it is not transient.
MALFORMED_RETRYABLE = True


def status_retryable(status: int) -> bool:
    """Whether a request that failed with HTTP `status` can succeed when sent again unchanged."""
    return status in _RETRYABLE_STATUSES or status >= 500


def retry_after_seconds(headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait, from `retry-after-ms`, `retry-after` (seconds or an HTTP date).

    Args:
        headers: response headers (a case-insensitive mapping such as the SDKs' `Headers`, or a plain dict with
            lower-case names).
        now: the current Unix time, for tests; defaults to `time.time()`.

    Returns:
        A non-negative number of seconds, or None when the server said nothing usable.
    """
    if headers is None:
        return None
    # `retry-after-ms` is the vendors' more precise variant (OpenAI and Anthropic both send it).
    millis = _number(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    raw = headers.get("retry-after")
    if raw is None:
        return None
    seconds = _number(raw)
    if seconds is not None:
        return seconds
    parsed = email.utils.parsedate_tz(raw)
    if parsed is None:
        return None
    return max(0.0, float(email.utils.mktime_tz(parsed)) - (time.time() if now is None else now))


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    if math.isnan(value) or math.isinf(value) or value < 0:
        return None
    return value


class Redactor:
    """Removes secrets (API keys) from text before it reaches an exception, a log line or an artifact."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        # Longest first, so a key that contains another key is replaced whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        return redact(text, self._secrets)

    def scrub(self, exc: BaseException) -> None:
        """Redact an SDK exception in place, so a traceback of the cause chain cannot show a secret either.

        SDK errors quote the response body, and a proxy may echo the key it was sent; `raise ... from exc`
        keeps the SDK exception reachable, so its text is cleaned rather than dropped.
        """
        if not self._secrets:
            return
        exc.args = tuple(self(a) if isinstance(a, str) else a for a in exc.args)
        for attr in ("message", "body", "api_message"):
            value = getattr(exc, attr, None)
            if isinstance(value, str):
                setattr(exc, attr, self(value))
            elif isinstance(value, dict | list):
                setattr(exc, attr, _redact_json(value, self))


def _redact_json(value: object, redact: Redactor) -> object:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_json(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_json(v, redact) for v in value]
    return value


def status_error(
    provider: str,
    status: int,
    detail: str | None,
    headers: Mapping[str, str] | None,
    redact: Redactor,
) -> ProviderError:
    """The `ProviderError` for an HTTP error status, with retryability and `retry_after` filled in."""
    retryable = status_retryable(status)
    retry_after = retry_after_seconds(headers) if retryable else None
    message = f"{provider}: HTTP {status}"
    if detail:
        message += f": {_shorten(redact(detail))}"
    if retry_after is not None:
        message += f" (retry after {retry_after:g}s)"
    return ProviderError(message, provider=provider, retryable=retryable, status=status, retry_after=retry_after)


def malformed_error(provider: str, what: str, redact: Redactor, *, status: int | None = None) -> ProviderError:
    """The `ProviderError` for a reply that could not be read (see `MALFORMED_RETRYABLE`)."""
    return ProviderError(
        f"{provider}: malformed response: {_shorten(redact(what))}",
        provider=provider,
        retryable=MALFORMED_RETRYABLE,
        status=status,
    )


def _shorten(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class SdkErrors:
    """Which exception classes of a vendor SDK mean what: the data `map_sdk_error` translates by.

    Attributes:
        validation: the response did not have the expected shape (`APIResponseValidationError`).
        status: an HTTP error status (`APIStatusError`, with `.status_code`, `.response`, `.body`).
        timeout: no answer in time (`APITimeoutError`; checked before `connection`, its base class).
        connection: the connection failed (`APIConnectionError`).
        detail: the human detail of a status error, from the SDK's exception.
    """

    validation: type[Exception]
    status: type[Exception]
    timeout: type[Exception]
    connection: type[Exception]
    detail: Callable[[Any], str | None]


def map_sdk_error(
    exc: Exception, errors: SdkErrors, *, provider: str, timeout_s: float, redact: Redactor
) -> ProviderError:
    """The one translation of an SDK's exception into a `ProviderError` (secrets scrubbed first)."""
    redact.scrub(exc)
    if isinstance(exc, errors.validation):
        message = str(getattr(exc, "message", exc))
        return malformed_error(provider, message, redact, status=getattr(exc, "status_code", None))
    if isinstance(exc, errors.status):
        response = getattr(exc, "response", None)
        headers = response.headers if response is not None else None
        return status_error(provider, int(getattr(exc, "status_code", 0)), errors.detail(exc), headers, redact)
    if isinstance(exc, errors.timeout):
        return ProviderError(f"{provider}: no answer within {timeout_s:g}s", provider=provider, retryable=True)
    if isinstance(exc, errors.connection):
        cause = exc.__cause__ or exc.__context__
        what = f"{type(cause).__name__}: {cause}" if cause is not None else str(getattr(exc, "message", exc))
        return ProviderError(f"{provider}: connection failed: {redact(what)}", provider=provider, retryable=True)
    if isinstance(exc, json.JSONDecodeError):
        # The SDKs let json.JSONDecodeError through for an invalid JSON body.
        return malformed_error(provider, f"invalid JSON body ({exc})", redact)
    # Anything else from the SDK (credentials it could not load, a misuse) will fail the same way again.
    return ProviderError(f"{provider}: {type(exc).__name__}: {redact(str(exc))}", provider=provider, retryable=False)
