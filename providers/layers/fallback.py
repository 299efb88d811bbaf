"""The fallback layer: tries the chain's models in order until one answers.

- A model that failed for good (`ModelFailedError` from the retry layer) with a retryable error, a 401/403/404
  or no status is that provider's problem: the next model is tried.
- Any other non-retryable status (400, 413, 422) means the request itself is wrong: raised at once.
- A model whose provider cannot be built (a missing key: `NotConfiguredError`) is skipped.
- A provider that cools down is skipped unless it is the last option left, which is tried anyway.
- When every model failed: `AllModelsFailedError`, an exception group of each model's error.
"""

from __future__ import annotations

import logging

from providers.base import CompletionRequest, CompletionResponse
from providers.cooldowns import CooldownStore
from providers.layers.base import DEFAULT_OPTIONS, CallOptions, Model, Router
from providers.layers.calls import NotConfiguredError
from providers.layers.retry import ModelFailedError
from providers.registry import ModelSpec
from vibe.errors import AllModelsFailedError, ConfigError, ProviderError

log = logging.getLogger("vibe.providers.manager")

# Statuses that mean "this provider or model is misconfigured", not "the request is wrong": fail over.
_CONFIG_STATUSES = frozenset({401, 403, 404})


class FallbackModel:
    """Sends the request to each model of its chain in turn (see the module docstring).

    Args:
        inner: the layer below (the retry layer), called with `request.model` set to each `provider:model`.
        router: builds the chain.
        cooldowns: which providers to skip.
    """

    def __init__(self, inner: Model, router: Router, cooldowns: CooldownStore) -> None:
        self._inner = inner
        self._router = router
        self._cooldowns = cooldowns

    async def complete(self, request: CompletionRequest, options: CallOptions = DEFAULT_OPTIONS) -> CompletionResponse:
        """The first answer of the chain, with `attempts` = provider calls across the chain.

        Raises:
            ConfigError: an unknown model (before any call); no model could be called because of configuration;
                or a provider raised one (a replay cassette miss).
            ProviderError: the request was rejected (400: no other model would accept it either).
            AllModelsFailedError: every model failed; its `exceptions` say why, model by model.
        """
        specs = self._router.chain(request.model, options.fallbacks)
        errors: list[Exception] = []
        last: ModelFailedError | None = None
        calls = 0
        for index, spec in enumerate(specs):
            if await self._skip(spec, last_option=index == len(specs) - 1, errors=errors):
                continue
            try:
                response = await self._inner.complete(request.model_copy(update={"model": spec.id}), options)
            except NotConfiguredError as exc:
                errors.append(exc)
                continue
            except ModelFailedError as exc:
                calls += exc.calls
                if not exc.retryable and exc.status is not None and exc.status not in _CONFIG_STATUSES:
                    raise ProviderError(
                        f"{spec.id} rejected the request: {exc.cause}",
                        provider=exc.provider,
                        retryable=False,
                        status=exc.status,
                    ) from exc.cause
                errors.append(exc)
                last = exc
                continue
            return response.model_copy(update={"attempts": calls + response.attempts})
        summary = "; ".join(str(e) for e in errors)
        if last is None:
            raise ConfigError(_nothing_callable(errors) or f"no model could be called: {summary}")
        raise AllModelsFailedError(
            f"every model failed after {calls} provider calls: {summary}",
            errors,
            provider=last.provider,
            retryable=last.retryable,
            status=last.status,
            retry_after=last.retry_after,
        ) from last.cause

    async def _skip(self, spec: ModelSpec, *, last_option: bool, errors: list[Exception]) -> bool:
        cooling = await self._cooldowns.cooling(spec.provider)
        if cooling is None:
            return False
        if last_option:
            log.warning("%s is cooling down (%.0fs left) but is the last option: trying it anyway", spec.id, cooling)
            return False
        errors.append(
            ProviderError(
                f"{spec.id}: skipped, {spec.provider} is cooling down ({cooling:.0f}s left)",
                provider=spec.provider,
                retryable=True,
            )
        )
        return True



def _nothing_callable(errors: list[Exception]) -> str | None:
    """One short line when every model of the chain only lacked its key."""
    from providers.factory import MissingKeyError, missing_keys_message

    missing = [e.__cause__ for e in errors]
    if not missing or not all(isinstance(m, MissingKeyError) for m in missing):
        return None
    return missing_keys_message([m for m in missing if isinstance(m, MissingKeyError)])
