"""Names shared by the setup, the deployments in `prefect.yaml`, submission and the flows.

Everything that `vibe setup` creates and something else refers to by name is named here, once: the queues and
their priorities, the global concurrency limits, the Prefect variables and Secret blocks that `prefect.yaml`
references, and the deployment of each kind of run.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Final, Literal

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
#: environment variable each one becomes in the flow-run process.
SECRET_BLOCKS: Final[dict[str, str]] = {
    "ANTHROPIC_API_KEY": "vibe-anthropic-api-key",
    "OPENAI_API_KEY": "vibe-openai-api-key",
    "GEMINI_API_KEY": "vibe-gemini-api-key",
    "XAI_API_KEY": "vibe-xai-api-key",
    "VIBE_COMPAT_API_KEY": "vibe-compat-api-key",
    "GITHUB_TOKEN": "vibe-github-token",
}

#: The automation that marks silent Running flow runs Crashed.
CRASH_AUTOMATION: Final = "vibe: crash flow runs without heartbeats"

#: Providers that get a cross-worker concurrency limit.
LLM_PROVIDERS: Final[tuple[str, ...]] = ("anthropic", "openai", "gemini", "xai", "compat")


def queue_limit_name(queue: str) -> str:
    """The global concurrency limit (with slot decay) that rate-limits flow-run starts on `queue`."""
    return f"vibe-queue-{queue}"


def llm_limit_name(provider: str) -> str:
    """The global concurrency limit that caps concurrent LLM calls to `provider` across every worker.

    Use it as `with prefect.concurrency.sync.concurrency(llm_limit_name("anthropic"), strict=True): ...`.
    """
    return f"vibe-llm-{provider}"


def prefect_llm_limiter(provider: str) -> AbstractAsyncContextManager[object]:
    """A `ProviderManager(limiter=...)` that holds a slot of `llm_limit_name(provider)` around each call.

    Strict: a limit that does not exist (no `vibe setup` on this server) fails the call with a clear error
    instead of limiting nothing.
    """
    from prefect.concurrency.asyncio import concurrency

    return concurrency(llm_limit_name(provider), occupy=1, strict=True)
