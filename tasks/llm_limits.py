"""Cross-worker limits on LLM calls: one Prefect global concurrency limit per provider, held around each call.

`vibe setup` (deployments/) creates the limits; deployed pipeline runs hold them through `prefect_llm_limiter`,
which the provider stack takes as its injected limiter (`ProviderManager(limiter=...)`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

from providers.table import provider_table

__all__ = ["llm_limit_name", "prefect_llm_limiter"]


def llm_limit_name(provider: str) -> str:
    """The global concurrency limit that caps concurrent LLM calls to `provider` across every worker.

    Use it as `with prefect.concurrency.sync.concurrency(llm_limit_name("anthropic"), strict=True): ...`. The name
    is the provider table's `limit`; a provider without one (`replay`) gets `vibe-llm-<provider>`, which `vibe setup`
    does not create, so a strict limiter refuses its calls as it always did.
    """
    row = provider_table().get(provider)
    return row.limit if row is not None and row.limit else f"vibe-llm-{provider}"


def prefect_llm_limiter(provider: str) -> AbstractAsyncContextManager[object]:
    """A `ProviderManager(limiter=...)` that holds a slot of `llm_limit_name(provider)` around each call.

    Strict: a limit that does not exist (no `vibe setup` on this server) fails the call with a clear error
    instead of limiting nothing. The slot is leased (300 s, renewed while the call runs), so a process that dies
    mid-call gives its slot back when the lease runs out.

    Raises:
        ConfigError: on entering, when the limit does not exist on this Prefect server (the message says to run
            `vibe setup`); nothing has been sent to the provider.
        OrchestrationError: on entering, when the Prefect API refused or failed the acquisition.
    """
    return _llm_slot(llm_limit_name(provider))


@asynccontextmanager
async def _llm_slot(name: str) -> AsyncIterator[object]:
    from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError, concurrency

    from vibe.errors import ConfigError, OrchestrationError

    async with AsyncExitStack() as stack:
        # Only the acquisition is translated: an error of the provider call itself passes through untouched.
        try:
            await stack.enter_async_context(concurrency(name, occupy=1, strict=True))
        except ConcurrencySlotAcquisitionError as exc:
            if await _limit_missing(name):
                raise ConfigError(
                    f"the Prefect global concurrency limit {name!r} does not exist on this server, so LLM calls "
                    f"cannot be limited across workers: run `vibe setup` against this server (it creates the "
                    f"limit with VIBE_LLM_CONCURRENCY_PER_PROVIDER slots), then re-run"
                ) from exc
            raise OrchestrationError(f"could not take a slot of the concurrency limit {name!r}: {exc}") from exc
        yield None


async def _limit_missing(name: str) -> bool:
    """True when the server says `name` does not exist; False when it exists or the API cannot tell."""
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    async with get_client() as client:
        try:
            await client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            return True
        except httpx.HTTPError:
            return False
    return False
