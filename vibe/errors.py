"""The project's exception tree.

```
VibeError
 +-- OperatorError            the operator's mistake: configuration or input; never retried
 |    +-- ConfigError          a missing key, an unknown provider or model, a bad setting
 |    |    +-- CassetteMissError  replay mode met a request its cassette has no answer for
 |    +-- InputError           bad input: a path outside the repository, a directory that is not git, ...
 |    +-- BudgetExceededError  a run reached its token or USD cap
 +-- ExternalError            a fault of an outside system; says whether retrying can help
      +-- ProviderError        an LLM provider failed (status, retry_after)
      |    +-- AllModelsFailedError  every model of a fallback chain failed: an ExceptionGroup of why
      +-- GitHubError          the GitHub API or a git remote failed
      +-- CacheError           Redis failed (callers degrade to no cache rather than fail)
      +-- LockTimeoutError     another process held a lock (e.g. a repository's index) for too long
      +-- OrchestrationError   the Prefect API failed or cannot be reached
```

SDK and library exceptions are translated into these in exactly one place per adapter, always with
`raise ... from exc`, so callers above the adapters never see an SDK type.
"""

from __future__ import annotations

from collections.abc import Sequence


class VibeError(Exception):
    """Base of every error the project raises on purpose."""


class OperatorError(VibeError):
    """The operator's mistake (configuration, input). Retrying cannot help; the message says how to fix it."""


class ConfigError(OperatorError):
    """A missing or invalid setting: an API key, an unknown provider, model or alias, a bad URL."""


class CassetteMissError(ConfigError):
    """Replay mode met a request the cassette holds no recorded answer for; the message says how to record one.

    Attributes:
        digest: the canonical request digest that was looked up.
    """

    def __init__(self, message: str, *, digest: str) -> None:
        super().__init__(message)
        self.digest = digest


class InputError(OperatorError):
    """Bad input: a path outside the repository, a repository that is not git, an unusable edit."""


class BudgetExceededError(OperatorError):
    """A run reached its token or USD budget and stopped cleanly."""


class ExternalError(VibeError):
    """An outside system failed.

    Attributes:
        retryable: whether the same call can succeed later (rate limits, 5xx, timeouts) or never will
            (400, 401, 404, a malformed request).
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class ProviderError(ExternalError):
    """An LLM provider failed.

    Attributes:
        provider: the provider's name (`anthropic`, `openai`, ...).
        status: the HTTP status when there was one.
        retry_after: seconds the provider asked us to wait (from `retry-after`), when it said.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, retryable=retryable)
        self.provider = provider
        self.status = status
        self.retry_after = retry_after


class AllModelsFailedError(ProviderError, ExceptionGroup[Exception]):
    """Every model of a fallback chain failed; `exceptions` holds each model's error, in the order tried.

    A `ProviderError` (so callers that catch those keep working) and an `ExceptionGroup` (so `except*` and
    tracebacks show each model's failure). `provider`, `retryable`, `status` and `retry_after` are those of the
    last provider error; `str()` is the message, which names each model and why it failed.
    """

    def __new__(
        cls,
        message: str,
        exceptions: Sequence[Exception],
        *,
        provider: str,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> AllModelsFailedError:
        group: AllModelsFailedError = super().__new__(cls, message, exceptions)
        return group

    def __init__(
        self,
        message: str,
        exceptions: Sequence[Exception],
        *,
        provider: str,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        ProviderError.__init__(
            self, message, provider=provider, retryable=retryable, status=status, retry_after=retry_after
        )

    def __str__(self) -> str:
        return self.message

    def derive(self, excs: Sequence[Exception]) -> AllModelsFailedError:  # type: ignore[override]
        return AllModelsFailedError(
            self.message,
            excs,
            provider=self.provider,
            retryable=self.retryable,
            status=self.status,
            retry_after=self.retry_after,
        )


class GitHubError(ExternalError):
    """The GitHub API or a git remote failed."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message, retryable=retryable)
        self.status = status


class CacheError(ExternalError):
    """Redis failed. Callers treat the cache as absent instead of failing the request."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class OrchestrationError(ExternalError):
    """The Prefect API failed, refused a request, or cannot be reached (setup, submit, status, cleanup)."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message, retryable=retryable)


class LockTimeoutError(ExternalError):
    """Another process held a lock (such as a repository index's writer lock) past the wait. Retryable."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)
