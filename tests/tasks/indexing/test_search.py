"""Search understands identifiers in any style and ranks definitions above mentions."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.indexing import index_repository, search_code
from tests.tasks.indexing.conftest import MakeRepo
from vibe.errors import InputError

_FILES = {
    "auth/session.py": (
        "def load_user_profile(user_id):\n"
        "    return database.fetch(user_id)\n"
    ),
    "auth/views.py": "".join(
        f"def view_{i}(request):\n    profile = load_user_profile(request.user_id)\n    return profile\n\n"
        for i in range(6)
    ),
    "web/api.ts": "export function getHttpResponseCode(res: Response): number {\n  return res.status;\n}\n",
    "README.md": "Sessions are cached for ten minutes.\n",
}


@pytest.fixture
def repo(make_repo: MakeRepo) -> Path:
    path = make_repo(dict(_FILES))
    index_repository(path)
    return path


def test_the_definition_outranks_its_many_callers(repo: Path) -> None:
    hits = search_code(repo, "load_user_profile", k=3)
    assert (hits[0].path, hits[0].symbol) == ("auth/session.py", "load_user_profile")
    assert hits[0].score > hits[1].score
    assert (hits[0].start_line, hits[0].end_line) == (1, 2)


@pytest.mark.parametrize("query", ["loadUserProfile", "LoadUserProfile", "load user profile", "user profile"])
def test_any_identifier_style_finds_the_snake_case_definition(repo: Path, query: str) -> None:
    assert search_code(repo, query, k=1)[0].symbol == "load_user_profile"


@pytest.mark.parametrize("query", ["get_http_response_code", "http response", "getHttpResponseCode"])
def test_camel_case_identifiers_are_split_into_words(repo: Path, query: str) -> None:
    assert search_code(repo, query, k=1)[0].path == "web/api.ts"


def test_plain_words_find_text_files_and_k_limits_the_results(repo: Path) -> None:
    assert search_code(repo, "cached minutes", k=1)[0].path == "README.md"
    assert len(search_code(repo, "profile", k=2)) == 2
    assert search_code(repo, "zzz_nothing_matches") == []


def test_a_query_with_fts_syntax_is_taken_literally(repo: Path) -> None:
    assert search_code(repo, 'profile" OR NEAR(* "', k=1)[0].path.startswith("auth/")


def test_bad_queries_are_clear_errors(repo: Path) -> None:
    with pytest.raises(InputError, match="no words"):
        search_code(repo, "  ?! ")
    with pytest.raises(InputError, match="at least 1"):
        search_code(repo, "profile", k=0)
