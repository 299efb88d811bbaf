"""Provider layers, each one `Model.complete(request, options)`, composed once by `providers.stack.build_stack`:

```
CachedModel -> FallbackModel -> RetryModel -> ProviderModel -> LimitedProvider -> adapter (Provider)
  cached.py      fallback.py      retry.py       calls.py          limits.py
```
"""

from __future__ import annotations

from providers.layers.base import DEFAULT_OPTIONS, CallOptions, Model, Router
from providers.layers.cached import CachedModel
from providers.layers.calls import NotConfiguredError, ProviderModel, ProviderPool
from providers.layers.fallback import FallbackModel
from providers.layers.limits import LimitedProvider, Limiter, Limits
from providers.layers.retry import ModelFailedError, RetryModel, RetryPolicy, Sleep

__all__ = [
    "DEFAULT_OPTIONS",
    "CachedModel",
    "CallOptions",
    "FallbackModel",
    "LimitedProvider",
    "Limiter",
    "Limits",
    "Model",
    "ModelFailedError",
    "NotConfiguredError",
    "ProviderModel",
    "ProviderPool",
    "RetryModel",
    "RetryPolicy",
    "Router",
    "Sleep",
]
