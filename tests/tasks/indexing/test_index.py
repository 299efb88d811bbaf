"""Indexing real git repositories: languages, incremental updates, skips, bad input, overlapping runs."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.indexing import index_repository, search_code, store_path
from tasks.indexing.scan import open_repository
from tests.tasks.indexing.conftest import SOURCES, MakeRepo, git, write
from vibe.errors import InputError


def _paths(repo: Path, query: str, k: int = 10) -> list[str]:
    return [hit.path for hit in search_code(repo, query, k=k)]


def test_indexes_every_language_and_finds_definitions(make_repo: MakeRepo) -> None:
    repo = make_repo()
    stats = index_repository(repo)
    assert stats.files == len(SOURCES)
    assert stats.changed == len(SOURCES)
    assert stats.skipped == 0
    assert stats.symbols >= 20
    assert stats.chunks >= len(SOURCES)
    # Small classes stay one chunk under the class's name; top-level functions are chunks of their own.
    expected = {
        "get_display_name": ("app/models.py", "UserAccount"),
        "fetchUserProfile": ("web/client.js", "fetchUserProfile"),
        "OrderSummary": ("web/types.ts", "OrderSummary"),
        "HandleRoute": ("cmd/server.go", "HandleRoute"),
        "push_item": ("src/lib.rs", "RingBuffer"),
        "restockShelf": ("src/main/java/Inventory.java", "Inventory"),
        "parseHeaderLine": ("web/client.js", "parseHeaderLine"),
        "drain_all": ("src/lib.rs", "Drainable"),
    }
    for query, (path, symbol) in expected.items():
        best = search_code(repo, query, k=1)[0]
        assert (best.path, best.symbol) == (path, symbol), query
        assert query in best.text
    guide = search_code(repo, "frobnication", k=1)[0]
    assert guide.path == "docs/guide.md"
    assert guide.symbol is None
    assert (guide.start_line, guide.end_line) == (1, 5)


def test_the_default_store_is_shared_under_vibe_home_and_store_dir_overrides_it(
    make_repo: MakeRepo, tmp_path: Path, vibe_home: Path
) -> None:
    repo = make_repo()
    stats = index_repository(repo)
    assert Path(stats.store) == vibe_home / "index" / "index.sqlite"
    assert Path(stats.store).exists()
    assert not (repo / ".git" / "vibe").exists()
    assert git(repo, "status", "--porcelain") == ""  # the working tree is untouched
    other = tmp_path / "elsewhere"
    private = index_repository(repo, store_dir=other)
    assert Path(private.store) == other / "index.sqlite"
    assert private.reused == 0  # a store of its own shares nothing with the default one
    assert search_code(repo, "restockShelf", k=1, store_dir=other)[0].path == "src/main/java/Inventory.java"
    assert _paths(repo, "restockShelf", k=1) == ["src/main/java/Inventory.java"]


def test_reindex_touches_only_changed_files_and_follows_edits_deletes_and_renames(make_repo: MakeRepo) -> None:
    repo = make_repo()
    index_repository(repo)
    assert index_repository(repo).changed == 0

    # An uncommitted edit counts, and the old definition leaves the index.
    write(repo, {"app/models.py": SOURCES["app/models.py"].replace("get_display_name", "get_badge_label")})
    stats = index_repository(repo)
    assert stats.changed == 1
    assert "app/models.py" in _paths(repo, "get_badge_label", k=3)
    assert [hit.path for hit in search_code(repo, "get_display_name")] == ["app/service.py"]  # the caller only

    # Committing the same content changes nothing: the blob id is the same.
    git(repo, "commit", "-qam", "rename method")
    assert index_repository(repo).changed == 0

    # A rename moves the file's records to the new path.
    git(repo, "mv", "cmd/server.go", "cmd/router.go")
    stats = index_repository(repo)
    assert stats.changed == 2  # one removed, one added
    assert _paths(repo, "HandleRoute", k=1) == ["cmd/router.go"]

    # A deletion (uncommitted, then committed) removes the file.
    (repo / "src/lib.rs").unlink()
    stats = index_repository(repo)
    assert stats.changed == 1
    assert stats.files == len(SOURCES) - 1
    assert "src/lib.rs" not in _paths(repo, "RingBuffer push_item")
    git(repo, "commit", "-qam", "remove rust")
    assert index_repository(repo).changed == 0


def test_untracked_files_count_and_ignored_files_do_not(make_repo: MakeRepo) -> None:
    repo = make_repo()
    write(repo, {".gitignore": "secret_notes.py\n", "secret_notes.py": "def hidden_plan(): pass\n",
                 "tools/new_tool.py": "def brand_new_helper():\n    return 1\n"})
    index_repository(repo)
    assert _paths(repo, "brand_new_helper", k=1) == ["tools/new_tool.py"]
    assert "secret_notes.py" not in _paths(repo, "hidden_plan")


def test_binary_vendored_generated_and_huge_files_are_skipped_and_counted(make_repo: MakeRepo) -> None:
    repo = make_repo(
        {
            "main.py": "def real_code():\n    return 1\n",
            "logo.png": b"\x89PNG\r\n\x1a\n\0\0\0binary",
            "data/blob.txt": b"text then \0 a NUL byte",
            "node_modules/lib/index.js": "function vendoredThing() {}\n",
            "vendor/github.com/x/y.go": "package y\nfunc VendoredGo() {}\n",
            "static/app.min.js": "function minifiedThing(){}\n",
            "api/types_pb2.py": "class GeneratedMessage: pass\n",
            "gen/models.go": "// Code generated by sqlc. DO NOT EDIT.\npackage gen\nfunc GeneratedModel() {}\n",
            "big/huge.py": "x = 1\n" * 5000,
        }
    )
    stats = index_repository(repo, max_file_bytes=20_000)
    assert stats.files == 1
    assert stats.skipped == 8
    assert stats.skipped_by_reason == {"binary": 2, "vendored": 2, "generated": 3, "huge": 1}
    for name in ("vendoredThing", "VendoredGo", "minifiedThing", "GeneratedMessage", "GeneratedModel"):
        assert search_code(repo, name) == [] or all(hit.path == "main.py" for hit in search_code(repo, name))
    assert index_repository(repo, max_file_bytes=20_000).changed == 0


def test_a_directory_outside_git_is_a_clear_error(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "a.py").write_text("def f(): pass\n")
    with pytest.raises(InputError, match="not inside a git repository"):
        index_repository(plain)
    with pytest.raises(InputError, match="does not exist"):
        index_repository(tmp_path / "missing")
    assert not (plain / ".git").exists()


def test_an_empty_repository_indexes_to_nothing_then_picks_up_new_files(make_repo: MakeRepo) -> None:
    repo = make_repo({}, commit=False)
    stats = index_repository(repo)
    assert stats.as_dict() | {"elapsed_s": 0} == {
        "files": 0, "changed": 0, "symbols": 0, "chunks": 0, "skipped": 0, "elapsed_s": 0
    }
    write(repo, {"first.py": "def first_function():\n    pass\n"})
    assert index_repository(repo).files == 1
    assert _paths(repo, "first_function") == ["first.py"]


def test_searching_before_indexing_says_what_to_do(make_repo: MakeRepo) -> None:
    repo = make_repo()
    with pytest.raises(InputError, match="vibe index"):
        search_code(repo, "anything")


def test_invalid_utf8_is_indexed_with_replacements_and_reported(make_repo: MakeRepo) -> None:
    repo = make_repo({"latin.py": b"# caf\xe9\ndef latin_function():\n    return '\xff'\n", "ok.py": "x = 1\n"})
    stats = index_repository(repo)
    assert stats.files == 2
    assert any("latin.py" in p and "invalid UTF-8" in p for p in stats.problems)
    hit = search_code(repo, "latin_function", k=1)[0]
    assert (hit.path, hit.symbol) == ("latin.py", "latin_function")
    assert "\ufffd" in hit.text


def test_syntax_errors_are_reported_and_the_rest_is_still_indexed(make_repo: MakeRepo) -> None:
    repo = make_repo({"broken.py": "def good_one():\n    return 1\n\ndef broken(:\n    pass\n"})
    stats = index_repository(repo)
    assert any("broken.py" in p and "syntax errors" in p for p in stats.problems)
    assert search_code(repo, "good_one", k=1)[0].symbol == "good_one"


def test_full_reindex_rebuilds_the_same_index(make_repo: MakeRepo) -> None:
    repo = make_repo()
    first = index_repository(repo)
    again = index_repository(repo, full=True)
    assert again.changed == len(SOURCES)
    assert (again.files, again.symbols, again.chunks) == (first.files, first.symbols, first.chunks)


def test_a_store_of_another_schema_version_is_rebuilt(make_repo: MakeRepo) -> None:
    repo = make_repo()
    stats = index_repository(repo)
    with sqlite3.connect(stats.store) as db:
        db.execute("UPDATE meta SET value = '0' WHERE key = 'schema_version'")
    with pytest.raises(InputError, match="schema version"):
        search_code(repo, "restockShelf")
    rebuilt = index_repository(repo)
    assert rebuilt.changed == len(SOURCES)
    assert search_code(repo, "restockShelf", k=1)[0].path == "src/main/java/Inventory.java"


_MANY = {f"pkg/module_{i:03d}.py": f"def function_number_{i}(value):\n    return helper_{i % 7}(value)\n"
         for i in range(120)}


def test_many_files_are_analysed_in_worker_processes(make_repo: MakeRepo) -> None:
    repo = make_repo(dict(_MANY))
    seen: list[tuple[int, int]] = []
    stats = index_repository(repo, workers=2, progress=lambda done, total: seen.append((done, total)))
    assert stats.files == 120
    assert seen[0] == (0, 120)
    assert seen[-1] == (120, 120)
    assert _paths(repo, "function_number_77", k=1) == ["pkg/module_077.py"]


_RUN = """
import json, sys
from pathlib import Path
from tasks.indexing import index_repository
stats = index_repository(Path(sys.argv[1]), workers=2)
print(json.dumps(stats.as_dict()))
"""


@pytest.mark.slow
def test_two_overlapping_index_runs_take_turns_and_leave_one_consistent_index(make_repo: MakeRepo) -> None:
    repo = make_repo(dict(_MANY))
    runs = [
        subprocess.Popen([sys.executable, "-c", _RUN, str(repo)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=240) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err.decode() for _, err in outputs]
    results = [json.loads(out) for out, _ in outputs]
    # The lock serialises them: one indexed everything, the other found nothing left to do.
    assert sorted(r["changed"] for r in results) == [0, 120]
    assert all(r["files"] == 120 for r in results)
    path = store_path(open_repository(repo))
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*), count(DISTINCT path) FROM files").fetchone() == (120, 120)
        chunk_ids = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        fts_rows = db.execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'function_number_5'").fetchone()
        db.execute("INSERT INTO chunks_fts (chunks_fts, rank) VALUES ('integrity-check', 0)")
    assert chunk_ids == 120
    assert fts_rows == (1,)


def test_an_unreadable_file_is_reported_and_retried_without_blocking_the_run(make_repo: MakeRepo) -> None:
    repo = make_repo({"good.py": "def good(): pass\n", "pipe.py": "def was_a_file(): pass\n"})
    # A FIFO where git tracks a file: unreadable even for root, and reading it would block forever.
    (repo / "pipe.py").unlink()
    os.mkfifo(repo / "pipe.py")
    stats = index_repository(repo)
    assert stats.files == 1
    assert stats.skipped_by_reason == {"unreadable": 1}
    assert any("pipe.py: unreadable" in problem for problem in stats.problems)
    again = index_repository(repo)  # retried, still reported, not counted as a change
    assert again.changed == 0
    assert any("pipe.py: unreadable" in problem for problem in again.problems)
    (repo / "pipe.py").unlink()
    (repo / "pipe.py").write_text("def readable_again(): pass\n")
    assert index_repository(repo).files == 2
    assert _paths(repo, "readable_again") == ["pipe.py"]


def test_a_file_that_cannot_be_read_is_unreadable_not_a_crash(tmp_path: Path) -> None:
    from tasks.indexing.analyze import Job, analyze

    (tmp_path / "adir").mkdir()
    result = analyze(Job(path="adir", root=str(tmp_path), blob=None))
    assert (result.status, result.blob) == ("unreadable", "")
    assert result.problem is not None
    assert analyze(Job(path="missing.py", root=str(tmp_path), blob="abc")).status == "unreadable"
