"""File-level ranking for a request: which files of the repository does it most likely need changed?

A request is read as weighted terms (`parse_query`): stop-words and issue references are dropped, and words
that look like identifiers (`get_in`, `parseArgs`, `Foo.bar(`, anything in backticks) weigh double. Each term
is matched on its own against the file-level index (BM25F over the path, the names a file defines, and its
whole text with identifier words, stemmed), so every term brings its own IDF and weight, and a file's score
is the weighted sum. Then priors: code over prose and tests (unless the request is about docs or tests),
examples and scripts below the package, a `.pyi` stub and its module counted as one file, and a test file's
evidence passed on to the module it tests.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import PurePosixPath

from tasks.indexing.store import Store
from tasks.indexing.terms import fts_match, split_identifier

# Words of English and of requests that say nothing about where the change goes.
_STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having
    he her here hers him his how i if in into is it its itself just let me more most my no nor not now of off
    on once only or other our out over own same she should so some such than that the their them then there
    these they this those through to too under until up very was we were what when where which while who whom
    why will with would you your yet via etc eg ie e g see also
    fix fixes fixed fixing add adds added adding make makes made allow allows allowed use uses used using
    support supports supported bug bugs issue issues problem change changes changed changing update updates
    updated new now properly correctly correct instead should must ensure thanks please
    self def function return none null true false""".split()  # noqa: SIM905 - a word list reads better as text
)
_TOKEN = re.compile(r"`[^`]+`|[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\(?|\b[0-9]+\b")
_NOISE = re.compile(r"\(?#[0-9]+\)?|https?://\S+|\b[0-9a-f]{12,40}\b")
_CAMEL = re.compile(r"[a-z0-9][A-Z]")
_TEST_WORDS = frozenset({"test", "tests", "testing", "testcase", "testcases", "pytest", "unittest", "unittests"})
_DOC_WORDS = frozenset({"doc", "docs", "documentation", "readme", "changelog", "tutorial", "guide"})
_PROSE_EXT = frozenset({".md", ".rst", ".txt", ".adoc", ".rdoc", ".textile"})
_PROSE_NAMES = frozenset({"readme", "changes", "changelog", "history", "contributing", "license", "authors",
                          "news", "notice", "copying", "install", "todo", "code_of_conduct", "security"})
_DATA_EXT = frozenset({".json", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".lock", ".csv", ".xml", ".in"})
_AUX_DIRS = frozenset({"examples", "example", "scripts", "script", "docs", "doc", "benchmarks", "bench", "tools",
                       "ci", ".github", "artwork", "extras", "contrib_scripts"})
_AUX_FILES = frozenset({"setup.py", "noxfile.py", "fabfile.py", "tasks.py", "conftest.py", "conf.py"})
_IDENTIFIER_WEIGHT = 2.0
# Words of requests and the words code uses for the same thing, as data: a request says "split into groups",
# the code says `partition`. Expansions weigh half a word of the request.
_CODE_WORDS = {
    "split": ("partition", "chunk"), "group": ("partition", "chunk", "batch"),
    "groups": ("partition", "chunk", "batch"),
    "dictionary": ("dict", "mapping"), "dictionaries": ("dict", "mapping"),
    "list": ("seq", "sequence"), "remove": ("drop", "pop", "delete"), "delete": ("remove", "drop"),
    "combine": ("merge", "concat", "join"), "merge": ("combine", "concat"), "length": ("len", "size"),
    "size": ("len", "length"), "lookup": ("get", "find"), "search": ("find", "lookup"), "find": ("lookup", "search"),
    "configuration": ("config", "settings"), "settings": ("config",), "folder": ("directory", "dir"),
    "directory": ("dir", "folder"), "error": ("exception", "raise"), "exception": ("error", "raise"),
}
_EXPANSION_WEIGHT = 0.5
# How much each kind of file counts when the request asks for a change to code.
_KIND_FACTOR = {"code": 1.0, "test": 0.3, "prose": 0.2, "aux": 0.4, "data": 0.5}
# The share of a test file's score passed on to the module it tests.
_TEST_TO_MODULE = 0.3
# Files looked at per term: a term's contribution to files beyond these is taken as nothing.
_FILES_PER_TERM = 300


@dataclass(frozen=True, slots=True)
class QueryTerm:
    """One term of a request: as typed, with its weight."""

    text: str
    weight: float


@dataclass(frozen=True, slots=True)
class Query:
    """A request read for ranking: its weighted terms and what kind of files it is about."""

    terms: tuple[QueryTerm, ...]
    wants_tests: bool
    wants_docs: bool


def _looks_like_identifier(token: str) -> bool:
    core = token.strip("_")
    return "_" in core or bool(_CAMEL.search(core)) or (core.isupper() and len(core) >= 3)


def parse_query(query: str) -> Query:
    """The weighted terms of a request (stop-words, issue numbers and URLs dropped), each once.

    `get_in`, `parseArgs`, `Foo.bar(` and anything in backticks count as identifiers and weigh double; a
    dotted name is its parts. If every word is a stop-word, the stop-words are kept (a query is never empty
    unless it has no words at all).
    """
    cleaned = _NOISE.sub(" ", query)
    weights: dict[str, float] = {}
    spelled: dict[str, str] = {}
    every: list[str] = []
    for token in _TOKEN.findall(cleaned):
        quoted = token.startswith("`")
        called = token.endswith("(")
        for part in re.findall(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]+", token):
            if not part.strip("_"):
                continue
            key = part.lower()
            every.append(part)
            if key in _STOPWORDS or (len(key) < 2 and not key.isdigit()):
                continue
            strong = quoted or called or _looks_like_identifier(part) or "." in token
            weight = _IDENTIFIER_WEIGHT if strong else 1.0
            spelled.setdefault(key, part)
            weights[key] = max(weights.get(key, 0.0), weight)
    for key in list(weights):
        for synonym in _CODE_WORDS.get(key, ()):
            if synonym not in weights:
                spelled[synonym] = synonym
                weights[synonym] = _EXPANSION_WEIGHT
    words = {part.lower() for part in every}
    first_line = {w.lower() for w in re.findall(r"[A-Za-z]+", cleaned.strip().split("\n", 1)[0])}
    if not weights:
        for part in every:
            spelled.setdefault(part.lower(), part)
            weights.setdefault(part.lower(), 1.0)
    return Query(
        terms=tuple(QueryTerm(spelled[key], weight) for key, weight in weights.items()),
        wants_tests=bool(first_line & _TEST_WORDS),
        wants_docs=bool(words & _DOC_WORDS),
    )


def file_kind(path: str) -> str:
    """`code`, `test`, `prose`, `aux` (examples, scripts, docs tooling, setup files) or `data`."""
    pure = PurePosixPath(path)
    name = pure.name.lower()
    stem = name.split(".", 1)[0]
    dirs = {part.lower() for part in pure.parts[:-1]}
    if pure.suffix.lower() in _PROSE_EXT or (stem in _PROSE_NAMES and pure.suffix.lower() in {"", *_PROSE_EXT}):
        return "prose"
    if (
        dirs & {"tests", "test", "testing", "testsuite", "__tests__", "spec"}
        or stem.startswith("test_") or stem.endswith(("_test", "_tests", ".test", ".spec")) or name == "conftest.py"
    ):
        return "test"
    if pure.suffix.lower() in _DATA_EXT or not pure.suffix:
        return "data"
    if dirs & _AUX_DIRS or name in _AUX_FILES:
        return "aux"
    return "code"


def _tested_stem(path: str) -> str | None:
    stem = PurePosixPath(path).stem
    for prefix in ("test_", "tests_"):
        if stem.startswith(prefix):
            return stem[len(prefix):]
    for suffix in ("_test", "_tests"):
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return None


def rank_files(store: Store, query: Query, *, limit: int = 50) -> list[tuple[str, float]]:
    """The files that best match `query`, best first, with their scores (comparable within one query).

    Args:
        store: the repository's index.
        query: the request, as `parse_query` reads it.
        limit: how many files to return at most.
    """
    raw: dict[str, float] = defaultdict(float)
    for term in query.terms:
        for path, score in store.search_files(fts_match([term.text]), _FILES_PER_TERM):
            raw[path] += term.weight * score
    if not raw:
        return []
    factors = dict(_KIND_FACTOR)
    if query.wants_tests:
        factors["test"] = 1.0
    if query.wants_docs:
        factors["prose"] = factors["aux"] = 1.0
    scored: dict[str, float] = {}
    for path, score in raw.items():
        scored[path] = score * factors[file_kind(path)]
    # A stub and its module are one file: the module carries both scores.
    for path in [p for p in scored if p.endswith(".pyi")]:
        module = path[:-1]
        if module in scored or module in raw:
            scored[module] = max(scored.get(module, 0.0), scored[path]) + 0.5 * min(scored.get(module, 0.0),
                                                                                      scored[path])
            del scored[path]
    # A test file leads to the module it tests (`tests/test_routing.py` -> `.../routing.py`).
    by_stem: dict[str, list[str]] = defaultdict(list)
    for path in scored:
        if file_kind(path) == "code":
            by_stem[PurePosixPath(path).stem].append(path)
    if not query.wants_tests:
        for path, score in list(raw.items()):
            stem = _tested_stem(path) if file_kind(path) == "test" else None
            for module in by_stem.get(stem or "", ()):
                scored[module] += _TEST_TO_MODULE * score
    ranked = sorted(scored.items(), key=lambda item: (-item[1], item[0]))
    return ranked[:limit]


def query_words(query: Query) -> list[str]:
    """The words of a query's terms, split like identifiers (for matching chunks)."""
    return [word for term in query.terms for word in split_identifier(term.text)]
