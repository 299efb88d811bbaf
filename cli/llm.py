"""`vibe complete PROMPT` (one LLM call through the provider manager) and `vibe cache stats|clear`.

Quick commands: they never import or start Prefect. Exit code 2 on a configuration error (unknown model, missing
key) or when every model failed; the message names what was tried and why.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli._app import app, emit, fail, load_settings
from vibe.errors import VibeError

if TYPE_CHECKING:
    from providers.base import CompletionRequest, CompletionResponse
    from providers.cache import CacheStats
    from vibe.settings import Settings

cache_app = typer.Typer(help="Inspect or empty the LLM cache (Redis, or the embedded store without REDIS_URL).")
app.add_typer(cache_app, name="cache")


@app.command()
def complete(
    prompt: Annotated[str, typer.Argument(help="What to ask.")],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="provider:model or an alias (default: VIBE_MODEL).")
    ] = None,
    fallback: Annotated[
        list[str] | None,
        typer.Option("--fallback", help="Next model if the previous fail; repeatable (default: VIBE_FALLBACKS)."),
    ] = None,
    system: Annotated[str | None, typer.Option("--system", "-s", help="The system prompt.")] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, help="Most tokens to generate.")] = 1024,
    temperature: Annotated[
        float | None, typer.Option("--temperature", min=0.0, max=2.0, help="Sampling temperature.")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the LLM cache.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Ask a model once, through the cache, retries and the fallback chain; print the answer."""
    settings = load_settings()
    from providers.base import CompletionRequest

    request = CompletionRequest.of(
        prompt, model=model or settings.model, system=system, max_tokens=max_tokens, temperature=temperature
    )
    try:
        response = asyncio.run(_complete(settings, request, fallback or None, use_cache=not no_cache))
    except VibeError as exc:
        fail(exc)
    payload: dict[str, Any] = {
        "text": response.text,
        "provider": response.provider,
        "model": response.model,
        "usage": response.usage.model_dump(),
        "cost_usd": response.cost_usd,
        "cached": response.cached,
        "attempts": response.attempts,
    }
    if as_json:
        emit(payload, as_json=True)
        return
    typer.echo(response.text)
    cost = "price unknown" if response.cost_usd is None else f"${response.cost_usd:.6f}"
    tokens = f"{response.usage.input_tokens}+{response.usage.output_tokens} tokens"
    source = "cached" if response.cached else f"{response.attempts} call(s)"
    typer.echo(f"[{response.model} · {tokens} · {cost} · {source}]", err=True)


async def _complete(
    settings: Settings, request: CompletionRequest, fallbacks: list[str] | None, *, use_cache: bool
) -> CompletionResponse:
    from providers.manager import ProviderManager

    async with ProviderManager.from_settings(settings) as manager:
        return await manager.complete(request, fallbacks=fallbacks, use_cache=use_cache)


@cache_app.command("stats")
def cache_stats(as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False) -> None:
    """Hits, misses, hit rate and cached entries of this cache prefix."""
    settings = load_settings()
    try:
        stats = asyncio.run(_stats(settings))
    except VibeError as exc:
        fail(exc)
    payload = {"prefix": settings.cache_prefix, **stats.as_dict()}
    human = (
        f"{stats.backend} cache at {stats.location} (prefix {settings.cache_prefix!r}): {stats.keys} entries, "
        f"{stats.hits} hits, {stats.misses} misses, hit rate {stats.hit_rate:.1%}"
    )
    if not settings.cache_enabled:
        human += "\nthe cache is off (VIBE_CACHE=off): answers are neither read from it nor written to it"
    payload["enabled"] = settings.cache_enabled
    emit(payload, as_json=as_json, human=human)


@cache_app.command("clear")
def cache_clear(as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False) -> None:
    """Delete this prefix's cached answers and counters (nothing else in Redis is touched)."""
    settings = load_settings()
    try:
        backend, location, deleted = asyncio.run(_clear(settings))
    except VibeError as exc:
        fail(exc)
    payload = {"backend": backend, "location": location, "prefix": settings.cache_prefix, "deleted": deleted}
    emit(payload, as_json=as_json, human=f"deleted {deleted} keys of prefix {settings.cache_prefix!r} ({location})")


async def _stats(settings: Settings) -> CacheStats:
    from providers.cache import open_cache

    cache = open_cache(settings)
    try:
        return await cache.stats()
    finally:
        await cache.aclose()


async def _clear(settings: Settings) -> tuple[str, str, int]:
    from providers.cache import open_cache

    cache = open_cache(settings)
    try:
        return cache.backend, cache.location, await cache.clear()
    finally:
        await cache.aclose()
