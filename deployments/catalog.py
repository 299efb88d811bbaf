"""Names shared by the setup, the deployments in `prefect.yaml`, submission and the flows.

Everything that `vibe setup` creates and something else refers to by name is named here, once: the queues and
their priorities, the global concurrency limits, the Prefect variables and Secret blocks that `prefect.yaml`
references, and the deployment of each kind of run. The per-provider LLM limits are named (and held at run
time) in `tasks.llm_limits`, one floor down, because the pipeline's tasks hold them; they are re-exported here.
"""

from __future__ import annotations

from typing import Final, Literal

from providers.table import provider_table
from tasks.llm_limits import llm_limit_name, prefect_llm_limiter

__all__ = [
    "CRASH_AUTOMATION", "DEPLOYMENTS", "LLM_PROVIDERS", "QUEUES", "SECRET_BLOCKS", "VAR_REINDEX_CRON",
    "VAR_REINDEX_REPOS", "Priority", "llm_limit_name", "prefect_llm_limiter", "queue_limit_burst",
    "queue_limit_name",
]  # fmt: skip

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


def queue_limit_burst(rate_per_minute: int) -> int:
    """How many starts a queue admits at once before its rate paces them: six seconds' worth, at least 2.

    The queue limit is a token bucket (a global concurrency limit of this many slots, each freed after
    60 / rate s), so 150 runs submitted at once at 100 per minute take (150 - 10) / 100 min = 84 s: the rate,
    not the bucket, sets the pace. At least 2, so that a queue of a slow rate still starts two runs together.
    """
    return max(2, rate_per_minute // 10)


def queue_limit_name(queue: str) -> str:
    """The global concurrency limit (with slot decay) that rate-limits flow-run starts on `queue`."""
    return f"vibe-queue-{queue}"
