"""File-level ranking: the code a request is about comes first, ahead of its tests, its docs and its stubs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.indexing import index_repository, search_code
from tasks.indexing.rank import file_kind, parse_query
from tests.tasks.indexing.conftest import MakeRepo

_PROJECT = {
    "colorlib/palette.py": (
        "def blend_colors(first, second, ratio):\n"
        "    \"\"\"Blend two colors; the ratio weighs the first color.\"\"\"\n"
        "    return mix(first, second, ratio)\n"
    ),
    "colorlib/palette.pyi": "def blend_colors(first: Color, second: Color, ratio: float) -> Color: ...\n",
    "colorlib/names.py": "NAMED = {'red': (255, 0, 0)}\n\ndef lookup_name(name):\n    return NAMED[name]\n",
    "tests/test_palette.py": "".join(
        f"def test_blend_colors_{i}():\n    assert blend_colors(RED, BLUE, 0.{i}) == blend_colors(RED, BLUE, 0.{i})\n"
        for i in range(5)
    ),
    "docs/palette.rst": "Blending colors\n===============\n\nblend_colors blends two colors by a ratio. " * 4,
    "CHANGES.rst": "- blend_colors: blends two colors by a ratio.\n" * 3,
    "colorlib/dicttools.py": (
        "def get_in(keys, coll, default=None):\n"
        "    \"\"\"Returns coll[k0][k1] for nested data structures such as dictionaries and lists.\n\n"
        "    >>> get_in(['a', 'b'], {'a': {'b': 1}})\n    1\n    \"\"\"\n"
        "    for key in keys:\n        coll = coll[key]\n    return coll\n\n\n"
        "def update_in(d, keys, func):\n"
        "    \"\"\"Update value in a (potentially) nested dictionary: the nested dictionary value at keys.\"\"\"\n"
        "    return func(d)\n"
    ),
    "colorlib/seqtools.py": (
        "def partition(n, seq):\n    \"\"\"Partition sequence into tuples of length n.\"\"\"\n"
        "    return zip(*[iter(seq)] * n)\n"
    ),
}


@pytest.fixture
def repo(make_repo: MakeRepo) -> Path:
    path = make_repo(dict(_PROJECT))
    index_repository(path)
    return path


def _files(repo: Path, query: str, k: int = 8) -> list[str]:
    return list(dict.fromkeys(hit.path for hit in search_code(repo, query, k=k)))


def test_a_change_to_behaviour_finds_the_module_before_its_tests_docs_and_changelog(repo: Path) -> None:
    files = _files(repo, "Clamp the ratio when blending two colors (#123)")
    assert files[0] == "colorlib/palette.py"
    assert files.index("tests/test_palette.py") > 0


def test_a_request_about_docs_or_tests_finds_them(repo: Path) -> None:
    assert _files(repo, "Document blending colors in the docs")[0] == "docs/palette.rst"
    assert _files(repo, "Add tests for blend_colors with five ratios")[0] == "tests/test_palette.py"


def test_a_stub_and_its_module_are_one_file(repo: Path) -> None:
    files = _files(repo, "blend_colors ratio Color")
    assert "colorlib/palette.py" in files
    assert "colorlib/palette.pyi" not in files


def test_hits_are_distinct_files_first(repo: Path) -> None:
    hits = search_code(repo, "colors ratio", k=3)
    assert len({hit.path for hit in hits}) == len(hits)


def test_a_name_made_of_the_request_words_is_the_chunk_shown(repo: Path) -> None:
    hit = search_code(repo, "get value from nested dictionary", k=1)[0]
    assert (hit.path, hit.symbol) == ("colorlib/dicttools.py", "get_in")


def test_request_words_find_the_words_code_uses(repo: Path) -> None:
    hit = search_code(repo, "split a list into groups of n", k=1)[0]
    assert (hit.path, hit.symbol) == ("colorlib/seqtools.py", "partition")


def test_queries_drop_stop_words_and_issue_numbers_and_favour_identifiers() -> None:
    query = parse_query("Fix the `blend` of parseArgs when it is None (#1234), see https://x.org/1")
    weights = {term.text: term.weight for term in query.terms}
    assert weights == {"blend": 2.0, "parseArgs": 2.0}
    assert parse_query("the of").terms  # nothing but stop-words: they are kept


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("src/pkg/core.py", "code"), ("tests/test_core.py", "test"), ("pkg/core_test.go", "test"),
        ("README", "prose"), ("docs/index.rst", "prose"), ("docs/conf.py", "aux"), ("examples/app.py", "aux"),
        ("setup.py", "aux"), ("pyproject.toml", "data"), ("CHANGES.rst", "prose"),
    ],
)
def test_file_kinds(path: str, kind: str) -> None:
    assert file_kind(path) == kind
