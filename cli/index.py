"""`vibe index`, `vibe search`, `vibe map`: the codebase index from the command line.

`index` is a step command: the `index_codebase` flow through `flows._dispatch.run_flow` (a tracked flow run when
a Prefect API is configured, otherwise the same work called directly). `search` and `map` are quick commands
that only read the index: they never import Prefect. `search` is hybrid (the files closest in meaning, over
all chunks, fused with the lexical ranking) when `VIBE_EMBEDDING_MODEL` is set.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli._app import app, emit, fail, load_settings
from vibe.errors import VibeError

if TYPE_CHECKING:
    from tasks.indexing import FileHit, IndexStats, SearchHit

_MAX_PROBLEMS_SHOWN = 10


def _human_stats(stats: IndexStats, *, verbose: bool = False) -> str:
    lines = [
        f"indexed {stats.files} files ({stats.changed} changed): {stats.symbols} symbols, {stats.chunks} chunks, "
        f"{stats.skipped} skipped, in {stats.elapsed_s:.2f}s"
    ]
    if stats.skipped_by_reason:
        hint = "" if verbose else " (run with --verbose to list them)"
        lines.append("skipped: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.skipped_by_reason.items())) + hint)
    if verbose:
        from tasks.indexing.models import SKIP_REASONS

        lines.extend(f"skipped {path}: {SKIP_REASONS.get(reason, reason)}" for path, reason in stats.skipped_files)
    shown = stats.problems if verbose else stats.problems[:_MAX_PROBLEMS_SHOWN]
    lines.extend(f"problem: {problem}" for problem in shown)
    if len(stats.problems) > len(shown):
        lines.append(f"... and {len(stats.problems) - len(shown)} more problems (run with --verbose to list them)")
    return "\n".join(lines)


@app.command()
def index(
    path: Annotated[Path, typer.Argument(help="The repository (any directory inside its working tree).")],
    full: Annotated[bool, typer.Option("--full", help="Rebuild the index instead of updating what changed.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Name every skipped file with its reason, and every problem.")
    ] = False,
) -> None:
    """Index a repository's code for search and repo maps (incremental: only changed files are read).

    The JSON object holds the figures and `skipped_files`: each skipped file's path and reason code.
    """
    settings = load_settings()
    try:
        from flows._dispatch import run_flow
        from flows.index_codebase import index_codebase

        stats = run_flow(index_codebase, settings=settings)(str(path), full=full)
    except VibeError as exc:
        fail(exc)
    payload = {**stats.as_dict(), "skipped_files": stats.skipped_as_list()}
    emit(payload, as_json=as_json, human=_human_stats(stats, verbose=verbose))


def _human_hits(hits: list[SearchHit]) -> str:
    if not hits:
        return "no results"
    out: list[str] = []
    for hit in hits:
        symbol = f"  {hit.symbol}" if hit.symbol else ""
        out.append(f"{hit.path}:{hit.start_line}-{hit.end_line}{symbol}  ({hit.score:.2f})")
        first = next((line.strip() for line in hit.text.splitlines() if line.strip()), "")
        if first:
            out.append(f"    {first[:110]}")
    return "\n".join(out)


def _human_files(files: list[FileHit]) -> str:
    if not files:
        return "no results"
    out: list[str] = []
    for file in files:
        out.append(f"{file.path}  ({file.score:.2f})")
        for hit in file.hits:
            symbol = f"  {hit.symbol}" if hit.symbol else ""
            first = next((line.strip() for line in hit.text.splitlines() if line.strip()), "")
            out.append(f"    {hit.start_line}-{hit.end_line}{symbol}: {first[:100]}")
    return "\n".join(out)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="Words or identifiers (any style: parseArgs, parse_args).")],
    repo: Annotated[Path, typer.Option("--repo", help="The indexed repository.")] = Path("."),
    k: Annotated[int, typer.Option("-k", "--limit", min=1, help="How many results.")] = 10,
    files: Annotated[
        bool, typer.Option("--files", help="Ranked files, each with its best lines, instead of chunks.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Search the repository's index (run `vibe index` first); hybrid when VIBE_EMBEDDING_MODEL is set."""
    from tasks.indexing import search_code, search_files

    if files:
        try:
            found = search_files(repo, query, k=k)
        except VibeError as exc:
            fail(exc)
        emit({"files": [file.as_dict() for file in found]}, as_json=as_json, human=_human_files(found))
        return
    settings = load_settings()
    try:
        embedder = None
        if settings.embedding_model:
            from providers.embeddings import embedder_from_settings

            embedder = embedder_from_settings(settings)
        hits = search_code(repo, query, k=k, embedder=embedder)
    except VibeError as exc:
        fail(exc)
    emit({"results": [hit.as_dict() for hit in hits]}, as_json=as_json, human=_human_hits(hits))


@app.command(name="map")
def repo_map(
    repo: Annotated[Path, typer.Option("--repo", help="The indexed repository.")] = Path("."),
    tokens: Annotated[
        int, typer.Option("--tokens", min=1, help="The map's budget in tokens (~4 characters each).")
    ] = 1024,
    mention: Annotated[
        list[str] | None, typer.Option("--mention", "-m", help="A file or symbol to centre the map on (repeatable).")
    ] = None,
) -> None:
    """Print the repository's most important definitions within a token budget (run `vibe index` first)."""
    from tasks.indexing import build_repo_map

    try:
        text = build_repo_map(repo, max_tokens=tokens, mentions=tuple(mention or ()))
    except VibeError as exc:
        fail(exc)
    typer.echo(text, nl=False)
