"""The limits layer: around every provider call, an in-process semaphore per provider (`VIBE_LLM_CONCURRENCY`),
the injected cross-process limiter (Prefect global concurrency limits on deployed runs), and a time limit.

It wraps a `Provider` (one adapter), so it sits right around the HTTP call: the retry layer's waits hold no
slot, and a provider that cannot be built takes none.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, nullcontext

from providers.base import CompletionRequest, CompletionResponse, Provider
from vibe.errors import ProviderError

Limiter = Callable[[str], AbstractAsyncContextManager[object]]

# The SDK's own timeout (llm_timeout_s) should fire first; this guard catches a provider that ignores it.
TIMEOUT_MARGIN_S = 5.0


class Limits:
    """The limits shared by every provider of one stack.

    Args:
        concurrency: calls at once per provider in this process.
        limiter: a factory of async context managers, called with the provider name around every call.
        timeout_s: the SDK timeout (`llm_timeout_s`); a call is abandoned a little after it.
    """

    def __init__(self, concurrency: int, limiter: Limiter | None, timeout_s: float) -> None:
        self._concurrency = concurrency
        self._limiter = limiter
        self.call_timeout_s = timeout_s + min(TIMEOUT_MARGIN_S, timeout_s)
        self._semaphores: dict[str, asyncio.Semaphore] = {}

    def semaphore(self, provider: str) -> asyncio.Semaphore:
        semaphore = self._semaphores.get(provider)
        if semaphore is None:
            semaphore = self._semaphores[provider] = asyncio.Semaphore(self._concurrency)
        return semaphore

    def slot(self, provider: str) -> AbstractAsyncContextManager[object]:
        return self._limiter(provider) if self._limiter is not None else nullcontext()


class LimitedProvider:
    """`inner` called under `limits` (see the module docstring). Closing it closes nothing: the pool owns `inner`."""

    def __init__(self, inner: Provider, limits: Limits) -> None:
        self._inner = inner
        self._limits = limits
        self.name = inner.name

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """The inner provider's answer, inside the semaphore, the limiter's slot and the time limit.

        Raises:
            ProviderError: the provider failed, or did not answer in time (retryable).
            ConfigError, OrchestrationError: the limiter could not give a slot (nothing was sent).
        """
        timeout_s = self._limits.call_timeout_s
        async with self._limits.semaphore(self.name), self._limits.slot(self.name):
            try:
                async with asyncio.timeout(timeout_s):
                    return await self._inner.complete(request)
            except TimeoutError as exc:
                raise ProviderError(
                    f"{self.name}:{request.model} did not answer within {timeout_s:.0f}s",
                    provider=self.name,
                    retryable=True,
                ) from exc

    async def aclose(self) -> None:
        """Nothing: the pool closes the providers it built."""
