"""Names shared by the setup, the deployments in `prefect.yaml`, submission and the flows.

Everything that `vibe setup` creates and something else refers to by name is named here, once: the queues and
their priorities, the global concurrency limits, the Prefect variables and Secret blocks that `prefect.yaml`
references, and the deployment of each kind of run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Final, Literal

from providers.table import provider_table

Priority = Literal["critical", "high", "medium", "low"]

#: Queue name -> Prefect priority (1 is served first). One queue per seed priority.
QUEUES: Final[dict[str, int]] = {"critical": 1, "high": 2, "medium": 3, "low": 4}

#: What `vibe submit` and `submit_run` accept -> the deployment name in `prefect.yaml`.
DEPLOYMENTS: Final[dict[str, str]] = {
    "index": "index",
    "generate": "generate",
    "test": "test",
    "pr": "pr",
    "run": "pipeline",
    "pipeline": "pipeline",
    "cleanup": "cleanup",
    "reindex": "reindex",
}

#: Prefect variables that `prefect.yaml` reads at deploy time (`{{ prefect.variables.NAME }}`).
VAR_REINDEX_CRON: Final = "vibe_reindex_cron"
VAR_REINDEX_REPOS: Final = "vibe_reindex_repos"

#: Secret blocks that the deployments' pull step exports (`{{ prefect.blocks.secret.NAME }}`), by the
#: environment variable each one becomes in the flow-run process: each provider's (from the provider table in
#: `providers/models.toml`), then GitHub's.
SECRET_BLOCKS: Final[dict[str, str]] = {
    **{row.key_env: row.secret_block for row in provider_table().values() if row.key_env and row.secret_block},
    "GITHUB_TOKEN": "vibe-github-token",
}

#: The automation that marks silent Running flow runs Crashed.
CRASH_AUTOMATION: Final = "vibe: crash flow runs without heartbeats"

#: Providers that get a cross-worker concurrency limit: those the provider table gives a `limit`.
LLM_PROVIDERS: Final[tuple[str, ...]] = tuple(name for name, row in provider_table().items() if row.limit)


def queue_limit_name(queue: str) -> str:
    """The global concurrency limit (with slot decay) that rate-limits flow-run starts on `queue`."""
    return f"vibe-queue-{queue}"


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
