"""Generate edits for a request: gather context from the index, ask the model, parse its reply.

These are the plain functions; `prefect_tasks.py` wraps them as Prefect tasks for the flows.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from providers.base import CompletionRequest, Message
from providers.manager import Limiter, ProviderManager, shared_manager
from providers.registry import ModelRegistry, ModelSpec
from tasks.codegen.budget import Budget
from tasks.codegen.prompt import SYSTEM_PROMPT, ContextFile, estimate_tokens, prompt_budget
from vibe.settings import Settings

# Whole files up to this size go into the prompt; larger ones are shown as the matching snippet.
_WHOLE_FILE_CHARS = 24_000
# Prompts stay under this even for models with huge windows: past it, more context costs more than it helps.
PROMPT_CAP_TOKENS = 60_000
# Replies are edits of a few files; a cap keeps a runaway reply from costing the model's whole output window.
_MAX_REPLY_TOKENS = 16_000


@dataclass(frozen=True)
class CodeContext:
    """What the model is shown about the repository: its map and the code most related to the request."""

    repo_map: str
    related: tuple[ContextFile, ...]


class Generation(BaseModel):
    """One answered LLM call of the pipeline, as persisted in the run's journal (`journal.get(step, Generation)`)."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    reply: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    cached: bool
    # A replayed answer's price had it been called live (its `cost_usd` is 0); None for real calls.
    list_cost_usd: float | None = None


def gather_context(
    repo: Path,
    request: str,
    *,
    read_root: Path | None = None,
    store_dir: Path | None = None,
    k: int = 8,
    map_tokens: int = 1024,
    settings: Settings | None = None,
) -> CodeContext:
    """Search the index of `repo` for the request and build the repository map around the hits.

    Args:
        repo: the indexed repository (index it first with `tasks.indexing.index_repository`).
        request: the user's request, used as the search query.
        read_root: where to read the files shown whole (the workspace; default `repo`).
        store_dir: the index store (default: the indexer's).
        k: how many search hits to consider.
        map_tokens: the size of the repository map.
        settings: with `embedding_model` set, the search is hybrid (retrieval by meaning fused with BM25).
    """
    from tasks.indexing import build_repo_map, search_code

    root = read_root or repo
    embedder = None
    if settings is not None and settings.embedding_model:
        from providers.embeddings import embedder_from_settings

        embedder = embedder_from_settings(settings)
    hits = search_code(repo, request, k=k, store_dir=store_dir, embedder=embedder)
    mentions = tuple(dict.fromkeys(hit.path for hit in hits))
    repo_map = build_repo_map(repo, max_tokens=map_tokens, mentions=mentions, store_dir=store_dir)
    related: list[ContextFile] = []
    seen: set[str] = set()
    for hit in hits:
        if hit.path in seen:
            continue
        path = root / hit.path
        text: str | None = None
        try:
            if _readable(root, path):
                text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            text = None
        if text is not None:
            seen.add(hit.path)
            related.append(ContextFile(path=hit.path, text=text))
        else:
            related.append(ContextFile(path=hit.path, text=hit.text, start_line=hit.start_line, end_line=hit.end_line))
    return CodeContext(repo_map=repo_map, related=tuple(related))


def _readable(root: Path, path: Path) -> bool:
    # Only regular files inside the tree go into a prompt: a symlink could point at a secret outside it.
    if path.is_symlink() or not path.is_file() or path.stat().st_size > _WHOLE_FILE_CHARS:
        return False
    return Path(os.path.realpath(path)).is_relative_to(Path(os.path.realpath(root)))


def read_context_files(root: Path, paths: Sequence[str]) -> tuple[ContextFile, ...]:
    """The current whole content of `paths` under `root` (skipping deleted, binary and oversize files)."""
    files: list[ContextFile] = []
    for rel in paths:
        path = root / rel
        try:
            if not _readable(root, path):
                continue
            files.append(ContextFile(path=rel, text=path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError):
            continue
    return tuple(files)


def model_spec(model: str) -> ModelSpec:
    """The registry's entry for `model` (alias, role or `provider:model`)."""
    return ModelRegistry.load().resolve(model)


def prompt_tokens_for(model: str) -> int:
    """The prompt budget for `model`: its context window less its reply and a reserve, capped."""
    spec = model_spec(model)
    return prompt_budget(spec.context_window, reply_tokens(spec), cap=PROMPT_CAP_TOKENS)


def reply_tokens(spec: ModelSpec) -> int:
    """The `max_tokens` asked for a reply of `spec`."""
    return min(spec.max_output, _MAX_REPLY_TOKENS)


def check_budget(budget: Budget, messages: Sequence[Message], *, model: str) -> None:
    """Raise `BudgetExceededError` when the run's budget does not allow sending `messages` to `model`."""
    spec = model_spec(model)
    estimate = estimate_tokens(SYSTEM_PROMPT) + sum(estimate_tokens(m.content) for m in messages)
    budget.check(estimated_input_tokens=estimate, input_price_per_mtok=spec.input_per_mtok)


async def ask_model(
    messages: Sequence[Message],
    *,
    settings: Settings,
    model: str,
    fallbacks: Sequence[str] | None = None,
    budget: Budget | None = None,
    limiter: Limiter | None = None,
    manager: ProviderManager | None = None,
) -> Generation:
    """Send the conversation to the model through the ProviderManager (which owns retries and failover).

    Args:
        messages: the conversation (see `prompt.build_messages`).
        settings: the invocation's settings.
        model: alias, role or `provider:model`.
        fallbacks: models to fail over to (default: the settings' or the registry's chain).
        budget: when given, checked before the call and charged after it.
        limiter: the cross-process limit around each provider call (Prefect global concurrency limits on a
            deployed run); only used when no `manager` is given.
        manager: the provider stack built once at the entry point (the caller closes it). Without one, the
            stack shared by every call with these settings and `limiter` in this event loop is used
            (`providers.manager.shared_manager`): built by the first call, reused by the next ones.

    Raises:
        BudgetExceededError: the budget does not allow this call (nothing was sent).
        ProviderError, ConfigError: as `ProviderManager.complete` raises them.
    """
    if budget is not None:
        check_budget(budget, messages, model=model)
    request = CompletionRequest(
        model=model, system=SYSTEM_PROMPT, messages=tuple(messages), max_tokens=reply_tokens(model_spec(model))
    )
    if manager is None:
        manager = await shared_manager(settings, limiter=limiter)
    response = await manager.complete(request, fallbacks=fallbacks)
    generation = Generation(
        reply=response.text,
        provider=response.provider,
        model=response.model,
        input_tokens=response.usage.input_tokens,
        output_tokens=response.usage.output_tokens,
        cost_usd=response.cost_usd,
        cached=response.cached,
        list_cost_usd=response.list_cost_usd,
    )
    if budget is not None:
        charge(budget, generation)
    return generation


def charge(budget: Budget, generation: Generation) -> None:
    """Add one generation's usage to the run's budget."""
    budget.charge(
        generation.provider,
        input_tokens=generation.input_tokens,
        output_tokens=generation.output_tokens,
        cost_usd=generation.cost_usd,
        cached=generation.cached,
        list_cost_usd=generation.list_cost_usd,
    )
