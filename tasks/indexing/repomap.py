"""A repo map for prompts: the repository's most important definitions within a token budget.

Aider's approach: files are nodes of a graph, and each reference to a name that another file defines is an
edge from the referencing file to the defining one. PageRank over that graph (personalised towards the files
and names a request mentions) ranks files; each file's rank flows along its edges to the definitions it
references, which ranks definitions. The best definitions are shown as their first source line, grouped by
file, with the enclosing class or impl line for context, until the budget is spent.

Differences from Aider: names defined in many files (`__init__`, `get`, `run`) add no edges, since a
reference to them says nothing about which file it means (this also keeps the graph small on large
repositories); files referencing their own definitions add no self-loops; and names mentioned by the request
also personalise the files that define them.
"""

from __future__ import annotations

import math
import re
import sqlite3
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from tasks.indexing.index import open_store, store_path
from tasks.indexing.scan import find_repository
from tasks.indexing.store import DefRow
from vibe.errors import InputError

_DAMPING = 0.85
_ITERATIONS = 40
_MAX_DEFINERS = 20
_CHARS_PER_TOKEN = 4
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_COMPOUND = re.compile(r"_[A-Za-z0-9]|[a-z][A-Z]")
_TYPE_VARIABLE = re.compile(r"\s*\w+\s*(:\s*[\w.\[\], ]+)?=\s*(typing\.)?(TypeVar|ParamSpec|TypeVarTuple)\(")


def _ident_weight(name: str, mentioned: set[str]) -> float:
    weight = 1.0
    if name in mentioned:
        weight *= 10.0
    # Long compound names are specific: a reference to one is strong evidence of a dependency.
    if len(name) >= 8 and _COMPOUND.search(name):
        weight *= 10.0
    if name.startswith("_"):
        weight *= 0.1
    return weight


def _pagerank(n: int, edges: dict[tuple[int, int], float], personal: list[float]) -> list[float]:
    """PageRank by power iteration over `n` nodes; `edges` are (src, dst) -> weight, `personal` sums to 1."""
    out = [0.0] * n
    for (src, _dst), weight in edges.items():
        out[src] += weight
    adjacency: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for (src, dst), weight in edges.items():
        adjacency[src].append((dst, weight / out[src]))
    dangling_nodes = [i for i in range(n) if out[i] == 0.0]
    rank = list(personal)
    # networkx's criterion: stop when the L1 change is below n * 1e-6.
    tolerance = n * 1e-6
    for _ in range(_ITERATIONS):
        dangling = sum(rank[i] for i in dangling_nodes)
        new = [(1.0 - _DAMPING + _DAMPING * dangling) * p for p in personal]
        for src, targets in adjacency.items():
            flow = _DAMPING * rank[src]
            for dst, share in targets:
                new[dst] += flow * share
        delta = sum(abs(a - b) for a, b in zip(new, rank, strict=True))
        rank = new
        if delta < tolerance:
            break
    return rank


def rank_definitions(
    defs: Sequence[DefRow],
    refs: Sequence[tuple[str, str, int]],
    mentions: Sequence[str] = (),
) -> list[tuple[float, DefRow]]:
    """Definitions with their importance, most important first.

    Args:
        defs: every definition of the repository.
        refs: every (referencing path, name, count).
        mentions: file paths (or their trailing parts) and names the request mentions.
    """
    definers: dict[str, set[str]] = defaultdict(set)
    for d in defs:
        definers[d.name].add(d.path)
    paths = sorted({d.path for d in defs} | {path for path, _, _ in refs})
    index = {path: i for i, path in enumerate(paths)}
    mentioned_files, mentioned_names = _resolve_mentions(mentions, paths, definers)

    edges: dict[tuple[int, int], float] = defaultdict(float)
    flows: list[tuple[int, str, str, float]] = []
    for path, name, count in refs:
        targets = definers.get(name)
        if not targets or len(targets) > _MAX_DEFINERS:
            continue
        weight = _ident_weight(name, mentioned_names) * math.sqrt(count)
        src = index[path]
        for target in targets:
            if target != path:
                edges[(src, index[target])] += weight
                flows.append((src, target, name, weight))

    if mentioned_files:
        personal = [1.0 / len(mentioned_files) if path in mentioned_files else 0.0 for path in paths]
    else:
        personal = [1.0 / len(paths)] * len(paths) if paths else []
    rank = _pagerank(len(paths), edges, personal) if paths else []

    out_weight: dict[int, float] = defaultdict(float)
    for (src, _dst), weight in edges.items():
        out_weight[src] += weight
    by_name: dict[tuple[str, str], float] = defaultdict(float)
    for src, target, name, weight in flows:
        by_name[(target, name)] += rank[src] * weight / out_weight[src]

    ranked: list[tuple[float, DefRow]] = []
    for d in defs:
        # A small share of the file's own rank orders the definitions nothing references.
        score = by_name.get((d.path, d.name), 0.0) + 1e-3 * rank[index[d.path]]
        if d.name in mentioned_names:
            score *= 10.0
        ranked.append((score, d))
    ranked.sort(key=lambda pair: -pair[0])
    return ranked


def _resolve_mentions(
    mentions: Sequence[str], paths: list[str], definers: dict[str, set[str]]
) -> tuple[set[str], set[str]]:
    files: set[str] = set()
    names: set[str] = set()
    for mention in mentions:
        cleaned = mention.strip().strip("`'\"").replace("\\", "/").removeprefix("./")
        if not cleaned:
            continue
        matched = [p for p in paths if p == cleaned or p.endswith("/" + cleaned)]
        files.update(matched)
        if matched:
            continue
        for word in _IDENT.findall(cleaned):
            if word in definers:
                names.add(word)
                if len(definers[word]) <= _MAX_DEFINERS:
                    files.update(definers[word])
    return files, names


def map_worthy(defs: Sequence[DefRow]) -> list[DefRow]:
    """The definitions a map should show: a stub's are left out when its module is indexed (they are one file,
    and the module is what gets edited), type-variable declarations (`_T = TypeVar("_T")`) say nothing, and of
    overloads (one name defined again in the same scope) the first stands for all."""
    modules = {d.path for d in defs if d.path.endswith(".py")}
    scopes: dict[str, list[DefRow]] = defaultdict(list)
    for d in defs:
        scopes[d.path].append(d)
    kept: list[DefRow] = []
    for path, file_defs in scopes.items():
        if path.endswith(".pyi") and path[:-1] in modules:
            continue
        seen: set[tuple[str, int]] = set()
        enclosing: list[DefRow] = []
        for d in sorted(file_defs, key=lambda d: (d.line, -d.end_line)):
            while enclosing and enclosing[-1].end_line < d.end_line:
                enclosing.pop()
            scope = (d.name, enclosing[-1].line if enclosing else 0)
            enclosing.append(d)
            if _TYPE_VARIABLE.match(d.signature) or scope in seen:
                continue
            seen.add(scope)
            kept.append(d)
    return kept


def render_map(ranked: Sequence[tuple[float, DefRow]], max_tokens: int) -> str:
    """The best definitions as `path:` headers and numbered signature lines, within `max_tokens` (~4 chars each)."""
    budget = max_tokens * _CHARS_PER_TOKEN
    by_file: dict[str, list[DefRow]] = defaultdict(list)
    chosen: dict[str, dict[int, str]] = {}
    order: list[str] = []
    for d in [d for _, d in ranked]:
        by_file[d.path].append(d)
    used = 0
    misses = 0
    for _score, d in ranked:
        lines = chosen.get(d.path)
        new_lines = {d.line: d.signature}
        # The class, impl or module that encloses a method, for context.
        for outer in by_file[d.path]:
            if outer.line < d.line and outer.end_line >= d.line and outer is not d:
                new_lines[outer.line] = outer.signature
        if lines is not None:
            new_lines = {line: text for line, text in new_lines.items() if line not in lines}
        cost = sum(len(_line(line, text)) + 1 for line, text in new_lines.items())
        if lines is None:
            cost += len(d.path) + 2
        if not new_lines:
            continue
        if used + cost > budget:
            misses += 1
            if misses > 200:
                break
            continue
        misses = 0
        used += cost
        if lines is None:
            chosen[d.path] = lines = {}
            order.append(d.path)
        lines.update(new_lines)
    out: list[str] = []
    for path in order:
        out.append(f"{path}:")
        out.extend(_line(line, text) for line, text in sorted(chosen[path].items()))
    return "\n".join(out) + ("\n" if out else "")


def _line(line: int, text: str) -> str:
    return f"{line:>5}│{text}"


def build_repo_map(
    repo: Path,
    *,
    max_tokens: int = 1024,
    mentions: Sequence[str] = (),
    store_dir: Path | None = None,
) -> str:
    """A map of the repository's most important definitions, for a prompt.

    Args:
        repo: any directory inside the indexed repository.
        max_tokens: the budget (estimated at four characters a token).
        mentions: file paths and symbol names the request mentions; the map leans towards them.
        store_dir: directory of the store, if not the default.

    Returns:
        Lines of `path:` followed by `  line│source line` for each chosen definition; empty if the index has
        no definitions.

    Raises:
        InputError: `max_tokens` < 1, not a git repository, or no index yet.
    """
    if max_tokens < 1:
        raise InputError(f"max_tokens must be at least 1, got {max_tokens}")
    repository = find_repository(repo)
    path = store_path(repository, store_dir)
    try:
        with open_store(repository, store_dir) as store:
            defs = store.definitions()
            refs = store.references()
    except sqlite3.Error as exc:
        raise InputError(f"the index at {path} cannot be read ({exc}): run `vibe index --full`") from exc
    return render_map(rank_definitions(map_worthy(defs), refs, mentions), max_tokens)
