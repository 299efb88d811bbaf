"""The code-generation steps as thin Prefect tasks over the plain functions of this package.

Declared with `tasks.step.step` (no cache, no persisted results, the one retry policy). The LLM call gets no
task retries: the provider stack retries and fails over. Flows call these through `tasks.step.call_step`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from prefect.context import FlowRunContext
from prefect.utilities.asyncutils import run_coro_as_sync

from providers.base import Message
from providers.manager import Limiter, ProviderManager
from tasks.codegen.apply import DEFAULT_MAX_FILE_BYTES, AppliedReply, apply_reply
from tasks.codegen.generate import CodeContext, Generation, ask_model, gather_context
from tasks.codegen.paths import PathRules
from tasks.step import step
from vibe.settings import Settings

__all__ = ["apply_reply_task", "ask_model_task", "gather_context_task", "open_provider_manager"]


@step("gather-context", retries=2, retry_delay_seconds=[1, 4])
def gather_context_task(
    repo: Path, request: str, read_root: Path, settings: Settings | None = None, store_dir: Path | None = None
) -> CodeContext:
    """Search hits (hybrid when an embedding model is configured) and the repository map for the request."""
    return gather_context(repo, request, read_root=read_root, store_dir=store_dir, settings=settings)


@step("ask-model")
def ask_model_task(
    messages: Sequence[Message],
    model: str,
    *,
    settings: Settings,
    manager: ProviderManager,
    fallbacks: Sequence[str] | None = None,
) -> Generation:
    """One LLM call through the flow run's provider stack (`open_provider_manager`), which owns the retries."""
    return run_coro_as_sync(ask_model(messages, settings=settings, model=model, fallbacks=fallbacks, manager=manager))


@step("apply-edits")
def apply_reply_task(
    root: Path,
    reply: str,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    *,
    rules: PathRules | None = None,
    allow_shrink: bool = False,
) -> AppliedReply:
    """Parse a reply and apply its edits under `root`, all or nothing (see `tasks.codegen.apply.apply_reply`).

    Raises:
        UnsafeEditError: an edit is refused (nothing was written).
    """
    return apply_reply(root, reply, max_file_bytes=max_file_bytes, rules=rules, allow_shrink=allow_shrink)


async def _build_manager(settings: Settings, limiter: Limiter | None) -> ProviderManager:
    # Built inside the loop that will run every call of this flow run (Prefect's run-sync loop).
    return ProviderManager(settings, limiter=limiter)


@contextmanager
def open_provider_manager(settings: Settings) -> Iterator[ProviderManager]:
    """The provider stack of one flow run: built once at the flow's entry, passed to every LLM step, closed at its end.

    On a deployed run each call holds a slot of the provider's Prefect global concurrency limit (created by
    `vibe setup`), so every worker together stays under it; ad-hoc runs have no such limits to hold.
    """
    limiter: Limiter | None = None
    context = FlowRunContext.get()
    if context is not None and context.flow_run is not None and context.flow_run.deployment_id is not None:
        from tasks.llm_limits import prefect_llm_limiter

        limiter = prefect_llm_limiter
    manager: ProviderManager = run_coro_as_sync(_build_manager(settings, limiter))
    try:
        yield manager
    finally:
        run_coro_as_sync(manager.aclose())
