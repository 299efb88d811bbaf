"""Model-driven localization: a cheap model, shown the repo map and the ranked candidates, names the files (and
symbols) a request needs changed; those go whole into the code generation prompt.

Agentless localizes file -> function -> lines; this is its first step, over the index's file ranking. The
prompt is bounded in tokens (the map and the candidates are cut to fit), the call goes through the provider
stack (cached like every LLM call), and the answer is parsed without trusting it: names of files that are
not in the index are dropped (a bare file name or a path suffix is resolved when it names one indexed file),
and when nothing usable is left, or the model cannot be reached, the ranking's first files are the answer.
`build_localization_prompt` and `parse_localization` are pure; `localize` does the I/O.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from providers.base import CompletionRequest, CompletionResponse, Message
from tasks.indexing.index import open_store
from tasks.indexing.models import FileHit
from tasks.indexing.repomap import build_repo_map
from tasks.indexing.scan import find_repository
from tasks.indexing.search import search_files
from vibe.errors import ExternalError

_log = logging.getLogger(__name__)

_CHARS_PER_TOKEN = 4
_REPLY_TOKENS = 400
_SYSTEM = (
    "You locate code. Given a change request, a map of a repository and the files a search ranked for it, name "
    "the files that must be edited to make the change, most important first, and the functions or classes in "
    "them. Name only files that appear in the map or the candidates. Answer with JSON only: "
    '{"files": ["path/to/file.py", ...], "symbols": ["path/to/file.py::ClassName.method", ...]}'
)
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)
_PATHLIKE = re.compile(r"[\w./\\-]+\.\w+")


class Completer(Protocol):
    """What `localize` needs of the provider stack (`providers.manager.ProviderManager` is one)."""

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """Answer one request."""


@dataclass(frozen=True, slots=True)
class Localization:
    """Where a change goes.

    Attributes:
        files: the files to show whole, most important first (paths relative to the repository root).
        symbols: `path::Name` of the functions or classes the model named inside `files` (may be empty).
        source: `model` when the files are the model's answer, `ranking` when the ranking's (the fallback).
        dropped: names the model gave that are not files of the index (reported, never used).
        note: why the ranking was used, or None.
    """

    files: tuple[str, ...]
    symbols: tuple[str, ...] = ()
    source: Literal["model", "ranking"] = "model"
    dropped: tuple[str, ...] = ()
    note: str | None = None


def build_localization_prompt(
    request: str, repo_map: str, candidates: Sequence[FileHit], *, max_tokens: int = 6000
) -> tuple[str, str]:
    """The (system, user) prompt of the localization call, within `max_tokens` (~4 characters a token).

    The request is kept whole (up to half the budget); the candidates (each path with the first line of its
    best chunks) come next, then as much of the repo map as fits, cut at a line.
    """
    budget = max_tokens * _CHARS_PER_TOKEN - len(_SYSTEM)
    request_text = request.strip()[: budget // 2]
    lines = []
    for rank, candidate in enumerate(candidates, start=1):
        lines.append(f"{rank}. {candidate.path}")
        for hit in candidate.hits:
            first = next((line.strip() for line in hit.text.splitlines() if line.strip()), "")
            name = f" {hit.symbol}" if hit.symbol else ""
            lines.append(f"   {hit.start_line}-{hit.end_line}{name}: {first[:120]}")
    head = f"Change request:\n{request_text}\n\nFiles the search ranked for it, best first:\n"
    left = budget - len(head) - 64
    ranked_text = _cut("\n".join(lines), left // 2 if repo_map else left)
    left -= len(ranked_text)
    map_text = _cut(repo_map, max(left, 0))
    user = f"{head}{ranked_text}\n\nRepository map (definitions by file):\n{map_text}\nAnswer with JSON only."
    return _SYSTEM, user


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    return cut[: cut.rfind("\n")] if "\n" in cut else ""


def _resolve(name: str, known: Collection[str], by_name: dict[str, list[str]]) -> str | None:
    cleaned = name.strip().strip("`'\"").replace("\\", "/").removeprefix("./").lstrip("/")
    cleaned = cleaned.split("::", 1)[0].split(":", 1)[0]
    if cleaned in known:
        return cleaned
    # A suffix (`routing.py`, `werkzeug/routing.py`) that names exactly one indexed file.
    matches = [path for path in by_name.get(cleaned.rsplit("/", 1)[-1], ()) if path.endswith("/" + cleaned)]
    return matches[0] if len(matches) == 1 else None


def _names(reply: str) -> tuple[list[str], list[str]]:
    """The file and symbol names of a reply: its JSON object if it has one, else anything path-like."""
    found = _JSON_OBJECT.search(reply)
    if found is not None:
        try:
            data = json.loads(found.group(0))
        except ValueError:
            data = None
        if isinstance(data, dict):
            files = data.get("files")
            symbols = data.get("symbols")
            return (
                [item for item in files if isinstance(item, str)] if isinstance(files, list) else [],
                [item for item in symbols if isinstance(item, str)] if isinstance(symbols, list) else [],
            )
    return _PATHLIKE.findall(reply), []


def parse_localization(
    reply: str, *, known_files: Collection[str], ranked: Sequence[str], max_files: int = 5
) -> Localization:
    """The model's answer as a `Localization`; never raises.

    Args:
        reply: the model's text.
        known_files: every file of the index (anything else the model names is dropped).
        ranked: the ranking's files, best first (the fallback).
        max_files: the most files to keep.
    """
    known = set(known_files)
    by_name: dict[str, list[str]] = {}
    for path in known:
        by_name.setdefault(path.rsplit("/", 1)[-1], []).append(path)
    file_names, symbol_names = _names(reply)
    files: list[str] = []
    dropped: list[str] = []
    for name in file_names:
        found = _resolve(name, known, by_name)
        if found is None:
            dropped.append(name)
        elif found not in files:
            files.append(found)
    files = files[:max_files]
    symbols: list[str] = []
    for name in symbol_names:
        file_name, _, symbol = name.partition("::")
        resolved = _resolve(file_name, known, by_name)
        if resolved is not None and symbol.strip() and resolved in files:
            symbols.append(f"{resolved}::{symbol.strip()}")
    if files:
        return Localization(files=tuple(files), symbols=tuple(dict.fromkeys(symbols)), dropped=tuple(dropped))
    note = "the model named no file of the index" if file_names else "the model named no file"
    return Localization(
        files=tuple(ranked[:max_files]), source="ranking", dropped=tuple(dropped), note=f"{note}: the ranking is used"
    )


async def localize(
    repo: Path,
    request: str,
    *,
    completer: Completer,
    model: str = "cheap",
    max_files: int = 5,
    candidates: int = 15,
    map_tokens: int = 1024,
    prompt_tokens: int = 6000,
    store_dir: Path | None = None,
) -> Localization:
    """Ask a (cheap) model which files of the indexed repository `request` needs changed.

    Args:
        repo: the indexed repository.
        request: the user's request.
        completer: the provider stack built at the entry point (a `ProviderManager`); its cache makes a
            repeated localization free.
        model: alias, role or `provider:model` of the model to ask (default: the `cheap` role).
        max_files: the most files to return.
        candidates: how many ranked files the model is shown.
        map_tokens: the repo map's budget within the prompt.
        prompt_tokens: the whole prompt's budget.
        store_dir: the index store, if not the default.

    Returns:
        The model's files, or the ranking's first `max_files` (with a note) when the model names no file of
        the index or cannot be reached.

    Raises:
        InputError: not an indexed repository, or an empty request (as `search_files`).
    """
    ranked = search_files(repo, request, k=candidates, store_dir=store_dir)
    paths = [hit.path for hit in ranked]
    repo_map = build_repo_map(repo, max_tokens=map_tokens, mentions=paths[:8], store_dir=store_dir)
    with open_store(find_repository(repo), store_dir) as store:
        known = [path for path, (_, status) in store.file_states().items() if status == "indexed"]
    system, user = build_localization_prompt(request, repo_map, ranked, max_tokens=prompt_tokens)
    call = CompletionRequest(
        model=model, system=system, messages=(Message(role="user", content=user),), max_tokens=_REPLY_TOKENS,
        temperature=0.0,
    )
    try:
        response = await completer.complete(call)
    except ExternalError as exc:
        _log.warning("localization model unavailable (%s): the ranking is used", exc)
        return Localization(files=tuple(paths[:max_files]), source="ranking", note=f"the model failed: {exc}")
    return parse_localization(response.text, known_files=known, ranked=paths, max_files=max_files)
