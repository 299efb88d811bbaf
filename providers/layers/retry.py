"""The retry layer: the only place LLM calls are retried (the SDKs run with `max_retries=0`).

For one model (the request's resolved `provider:model`): a retryable `ProviderError` (429, 5xx, timeouts,
malformed replies) is retried up to `max_retries` times with exponential backoff and jitter; a `retry_after`
makes the wait `max(retry_after, backoff)`, and one longer than `max_wait_s` gives up at once and cools the
provider down for `max(cooldown_s, retry_after)`. Exhausted retries cool it down for `cooldown_s`. A
non-retryable error is not retried. Failures leave as `ModelFailedError`, which says how many calls were made.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from providers.base import CompletionRequest, CompletionResponse
from providers.cooldowns import CooldownStore
from providers.layers.base import DEFAULT_OPTIONS, CallOptions, Model
from vibe.errors import ProviderError

log = logging.getLogger("vibe.providers.manager")

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    """`llm_max_retries`, `llm_retry_base_s`, `llm_max_retry_wait_s` and `provider_cooldown_s`."""

    max_retries: int
    base_s: float
    max_wait_s: float
    cooldown_s: float

    def backoff(self, attempt: int) -> float:
        """Exponential with jitter in [d/2, d]: spreads retries of many workers without ever waiting ~0."""
        ceiling: float = min(self.base_s * 2.0**attempt, self.max_wait_s)
        return ceiling / 2 + random.uniform(0, ceiling / 2)


class ModelFailedError(ProviderError):
    """One model of the chain failed for good: the last error, with the model and the calls it took.

    Attributes:
        model: the `provider:model` that failed.
        calls: provider calls made for it.
        cause: the last `ProviderError` of those calls.
    """

    def __init__(self, message: str, *, model: str, calls: int, cause: ProviderError) -> None:
        super().__init__(
            message,
            provider=cause.provider,
            retryable=cause.retryable,
            status=cause.status,
            retry_after=cause.retry_after,
        )
        self.model = model
        self.calls = calls
        self.cause = cause


class RetryModel:
    """Retries `inner` for one model and cools its provider down when that fails.

    Args:
        inner: the layer below (the provider call).
        cooldowns: where cooldowns are written (the fallback layer reads them).
        policy: retry counts and waits.
        sleep: how to wait between retries (tests pass one that records the waits).
    """

    def __init__(self, inner: Model, cooldowns: CooldownStore, policy: RetryPolicy, *, sleep: Sleep) -> None:
        self._inner = inner
        self._cooldowns = cooldowns
        self._policy = policy
        self._sleep = sleep

    async def complete(self, request: CompletionRequest, options: CallOptions = DEFAULT_OPTIONS) -> CompletionResponse:
        """The answer of the model `request.model` (a resolved `provider:model`), `attempts` = calls made.

        Raises:
            ModelFailedError: the model failed for good (its `cause` is the last error).
            ConfigError: the provider cannot be called (passed through unchanged, never retried).
        """
        model = request.model
        provider = model.partition(":")[0]
        policy = self._policy
        for attempt in range(policy.max_retries + 1):
            try:
                response = await self._inner.complete(request, options)
            except ProviderError as exc:
                calls = attempt + 1
                if not exc.retryable:
                    raise ModelFailedError(f"{model}: {exc}", model=model, calls=calls, cause=exc) from exc
                if attempt == policy.max_retries:
                    await self._cool(provider, policy.cooldown_s)
                    raise ModelFailedError(
                        f"{model}: {exc} (after {calls} calls)", model=model, calls=calls, cause=exc
                    ) from exc
                wait = policy.backoff(attempt)
                if exc.retry_after is not None:
                    if exc.retry_after > policy.max_wait_s:
                        await self._cool(provider, max(policy.cooldown_s, exc.retry_after))
                        raise ModelFailedError(
                            f"{model}: {exc} (asked to wait {exc.retry_after:.0f}s, more than "
                            f"llm_max_retry_wait_s={policy.max_wait_s:.0f}s)",
                            model=model,
                            calls=calls,
                            cause=exc,
                        ) from exc
                    wait = max(wait, exc.retry_after)
                log.info("%s failed (%s); retry %d/%d in %.2fs", model, exc, calls, policy.max_retries, wait)
                await self._sleep(wait)
                continue
            return response.model_copy(update={"attempts": attempt + 1})
        raise AssertionError("unreachable: the loop returns or raises")

    async def _cool(self, provider: str, seconds: float) -> None:
        if seconds <= 0:
            return
        log.warning("%s failed past its retries: cooling it down for %.0fs", provider, seconds)
        await self._cooldowns.cool(provider, seconds)
