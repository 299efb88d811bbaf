"""Identifier-aware terms for the full-text index and for queries.

FTS5's tokenizer (configured with `_` as a token character) keeps `parse_args` and `getUserName` whole; this
module adds the words inside compound identifiers (`parse`, `args`, `get`, `user`, `name`) so that a query for
either the whole identifier or one of its words finds it. Only distinct compound identifiers are split, which
keeps the cost per chunk small.
"""

from __future__ import annotations

import re

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Candidates for splitting: identifiers of two characters or more (a linear scan, no backtracking).
_LONG_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]+")
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
# Words too common in code to help ranking a query that has better words.
_STOPWORDS = frozenset(
    """a an and are as at be by for from if in is it of on or the to with self this def function return
    import const let var new none null true false""".split()  # noqa: SIM905 - a word list reads better as text
)


def split_identifier(identifier: str) -> list[str]:
    """The lower-case words of an identifier: `getHTTPResponse_code` -> [`get`, `http`, `response`, `code`]."""
    return [word.lower() for word in _WORD.findall(identifier)]


def identifier_parts(text: str) -> str:
    """The words of every distinct compound identifier in `text`, space-separated, for the `parts` column."""
    # One C-level union over cached tuples: this runs once per chunk of every file indexed.
    return " ".join(set().union(*map(_PARTS_CACHE.__getitem__, set(_LONG_IDENT.findall(text)))))


class _PartsCache(dict[str, tuple[str, ...]]):
    """Identifier -> its words, computed on first use and shared by every file a process analyses."""

    def __missing__(self, identifier: str) -> tuple[str, ...]:
        parts = self[identifier] = _parts(identifier)
        return parts


_PARTS_CACHE = _PartsCache()


def _parts(identifier: str) -> tuple[str, ...]:
    core = identifier.strip("_")
    # Compound: an underscore between characters, or mixed case (`getName`, `HTTPServer`).
    if "_" in core or not (core.islower() or core.isupper() or core.istitle()):
        return tuple(split_identifier(core))
    # `__init__` is also found as `init`.
    return (core.lower(),) if core != identifier and core else ()


def names_and_parts(names: list[str]) -> str:
    """Definition names with their words, for the `defs` column (the definition boost)."""
    return " ".join(map(_NAME_TERMS.__getitem__, names))


class _NameTerms(dict[str, str]):
    """Definition name -> the name and, for a compound, its words (shared by every file a process analyses)."""

    def __missing__(self, name: str) -> str:
        words = split_identifier(name)
        terms = self[name] = " ".join([name, *words]) if len(words) > 1 else name
        return terms


_NAME_TERMS = _NameTerms()


def query_identifiers(query: str) -> list[str]:
    """The identifiers and numbers of a search query, in order, each once (case-insensitively)."""
    found: dict[str, str] = {}
    for token in _IDENT.findall(query) + re.findall(r"\b[0-9]+\b", query):
        if token.strip("_"):
            found.setdefault(token.lower(), token)
    return list(found.values())


def _quote(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def fts_match(identifiers: list[str], *, every: bool = False) -> str:
    """An FTS5 MATCH expression: any (or, with `every`, all) of the identifiers, each as itself or as all of
    its words.

    `parseArgs config` becomes `("parseargs" OR ("parse" AND "args")) OR "config"`: BM25 ranks chunks that
    match more and rarer terms first, and requiring all the words of a compound keeps the candidate set
    small (and the search fast). Stopwords are dropped unless nothing else is left.
    """
    groups: list[tuple[str, str]] = []
    for identifier in identifiers:
        whole = identifier.lower()
        words = [word for word in dict.fromkeys(split_identifier(identifier)) if word != whole]
        if len(words) > 1:
            group = f"({_quote(whole)} OR ({' AND '.join(_quote(word) for word in words)}))"
        elif words:
            group = f"({_quote(whole)} OR {_quote(words[0])})"
        else:
            group = _quote(whole)
        groups.append((whole, group))
    meaningful = [group for whole, group in groups if whole not in _STOPWORDS]
    return (" AND " if every else " OR ").join(meaningful or [group for _, group in groups])
