"""The repo map ranks what the repository depends on, within the budget, leaning towards what is mentioned."""

from __future__ import annotations

from tasks.indexing import build_repo_map, index_repository
from tests.tasks.indexing.conftest import MakeRepo

_CORE = '''class LedgerEngine:
    def post_transaction(self, entry):
        return entry


def compute_balance_total(entries):
    return sum(entries)
'''
_FILES = {
    "core/ledger.py": _CORE,
    "util/strings.py": "def slugify_title(text):\n    return text.lower()\n",
    "reports/monthly.py": "def render_report_table(rows):\n    return slugify_title(str(rows))\n",
    **{
        f"jobs/job_{i}.py": (
            "from core.ledger import LedgerEngine, compute_balance_total\n\n"
            f"def run_job_{i}(entries):\n"
            "    engine = LedgerEngine()\n"
            "    engine.post_transaction(entries)\n"
            "    return compute_balance_total(entries)\n"
        )
        for i in range(6)
    },
}


def _files_in(text: str) -> list[str]:
    return [line[:-1] for line in text.splitlines() if line.endswith(":") and not line.startswith(" ")]


def test_the_most_referenced_definitions_come_first(make_repo: MakeRepo) -> None:
    repo = make_repo(dict(_FILES))
    index_repository(repo)
    text = build_repo_map(repo, max_tokens=1024)
    assert _files_in(text)[0] == "core/ledger.py"
    assert "class LedgerEngine:" in text
    assert "def compute_balance_total(entries):" in text
    # Methods come with their class line, with line numbers.
    assert "    2│    def post_transaction(self, entry):" in text


def test_the_map_stays_within_its_token_budget(make_repo: MakeRepo) -> None:
    repo = make_repo(dict(_FILES))
    index_repository(repo)
    small = build_repo_map(repo, max_tokens=30)
    assert 0 < len(small) <= 30 * 4
    assert len(build_repo_map(repo, max_tokens=2000)) > len(small)


def test_mentions_personalise_the_map(make_repo: MakeRepo) -> None:
    repo = make_repo(dict(_FILES))
    index_repository(repo)
    plain = build_repo_map(repo, max_tokens=25)
    assert "slugify_title" not in plain
    # The report mentions a file that depends on util/strings.py: the map now starts there.
    focused = build_repo_map(repo, max_tokens=25, mentions=["reports/monthly.py"])
    assert _files_in(focused)[0] == "util/strings.py"
    by_name = build_repo_map(repo, max_tokens=25, mentions=["slugify_title"])
    assert "def slugify_title(text):" in by_name


def test_an_index_without_definitions_gives_an_empty_map(make_repo: MakeRepo) -> None:
    repo = make_repo({"notes.txt": "just text\n"})
    index_repository(repo)
    assert build_repo_map(repo) == ""


_STUB = '''from typing import TypeVar, overload
_T = TypeVar("_T")

class Box:
    @overload
    def get(self, key: int) -> int: ...
    @overload
    def get(self, key: str) -> str: ...
    def put(self, value: _T) -> None: ...
'''


def test_a_stub_is_one_with_its_module_and_its_noise_is_left_out(make_repo: MakeRepo) -> None:
    module = "class Box:\n    def get(self, key):\n        return key\n\n    def put(self, v):\n        self.v = 1\n"
    repo = make_repo({"pkg/core.py": module, "pkg/core.pyi": _STUB, "stubs_only/api.pyi": _STUB})
    index_repository(repo)
    text = build_repo_map(repo, max_tokens=1024)
    assert "pkg/core.pyi:" not in text
    assert "pkg/core.py:" in text
    stub_part = text.split("stubs_only/api.pyi:", 1)[1]
    assert "TypeVar" not in stub_part
    assert stub_part.count("def get") == 1
    assert "def put" in stub_part
