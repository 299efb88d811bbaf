"""Index reuse by content: clones, worktrees and branches in the shared default store analyse only unseen blobs."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.indexing import index_repository, search_code, store_path
from tasks.indexing.scan import open_repository
from tests.tasks.indexing.conftest import SOURCES, MakeRepo, git, write


def _clone(source: Path, target: Path) -> Path:
    git(source.parent, "clone", "-q", str(source), str(target))
    return target


def _contents(repo: Path) -> int:
    with sqlite3.connect(store_path(open_repository(repo))) as db:
        count: int = db.execute("SELECT count(*) FROM contents").fetchone()[0]
    return count


def test_a_second_clone_in_the_default_store_analyses_no_blob_and_searches_its_own_paths(
    make_repo: MakeRepo, tmp_path: Path
) -> None:
    first = make_repo()
    clone = _clone(first, tmp_path / "clone")
    one = index_repository(first)
    two = index_repository(clone)
    assert one.reused == 0
    assert two.store == one.store
    # Every file was linked to an analysis the store had: none was read or parsed again.
    assert two.reused == two.changed == len(SOURCES)
    assert _contents(clone) == len(SOURCES)
    assert (two.files, two.symbols, two.chunks) == (one.files, one.symbols, one.chunks)
    hit = search_code(clone, "restockShelf", k=1)[0]
    assert hit.path == "src/main/java/Inventory.java"
    assert index_repository(clone).changed == 0


def test_a_store_dir_shared_by_two_clones_reuses_too(make_repo: MakeRepo, tmp_path: Path) -> None:
    shared = tmp_path / "team" / "index"
    first = make_repo()
    clone = _clone(first, tmp_path / "clone")
    index_repository(first, store_dir=shared)
    assert index_repository(clone, store_dir=shared).reused == len(SOURCES)
    assert search_code(clone, "restockShelf", k=1, store_dir=shared)[0].path == "src/main/java/Inventory.java"


def test_an_edit_in_one_clone_leaves_the_other_as_it_was(make_repo: MakeRepo, tmp_path: Path) -> None:
    first = make_repo()
    clone = _clone(first, tmp_path / "clone")
    index_repository(first)
    index_repository(clone)
    write(clone, {"app/models.py": "def brand_new_helper():\n    return 1\n"})
    (clone / "app" / "service.py").unlink()
    edited = index_repository(clone)
    assert (edited.changed, edited.reused) == (2, 0)
    assert search_code(clone, "brand_new_helper", k=1)[0].path == "app/models.py"
    assert search_code(first, "brand_new_helper", k=3) == []
    # The first clone still has the file the second deleted, and its old content.
    assert search_code(first, "create_account", k=1)[0].path in {"app/models.py", "app/service.py"}
    assert index_repository(first).changed == 0


def test_another_branch_analyses_only_the_files_it_changed(make_repo: MakeRepo, tmp_path: Path) -> None:
    repo = make_repo()
    worktree = tmp_path / "feature"
    git(repo, "worktree", "add", "-q", "-b", "feature", str(worktree))
    write(worktree, {"app/service.py": "def register_twice(name):\n    return name * 2\n"})
    git(worktree, "commit", "-q", "-am", "twice")
    index_repository(repo)
    stats = index_repository(worktree)
    assert (stats.changed, stats.reused) == (len(SOURCES), len(SOURCES) - 1)
    assert search_code(worktree, "register_twice", k=1)[0].path == "app/service.py"
    assert search_code(repo, "register_twice", k=1) == []


def test_a_full_reindex_of_one_clone_keeps_the_other_searchable(make_repo: MakeRepo, tmp_path: Path) -> None:
    first = make_repo()
    clone = _clone(first, tmp_path / "clone")
    index_repository(first)
    index_repository(clone)
    again = index_repository(clone, full=True)
    assert (again.changed, again.reused) == (len(SOURCES), 0)
    assert search_code(first, "restockShelf", k=1)[0].path == "src/main/java/Inventory.java"
    assert len(search_code(first, "restockShelf", k=5)) == 1
    assert index_repository(first).changed == 0
    assert _contents(first) == len(SOURCES)  # analysed again in place, not duplicated


def test_a_deleted_or_moved_repository_leaves_the_others_working_and_its_own_rows_go(
    make_repo: MakeRepo, tmp_path: Path
) -> None:
    first = make_repo()
    clone = _clone(first, tmp_path / "clone")
    write(clone, {"only/in_clone.py": "def clone_only_helper():\n    return 2\n"})
    index_repository(first)
    index_repository(clone)
    assert _contents(first) == len(SOURCES) + 1

    # Moved: the new place links every analysis (the old map still holds them), then the old map is dropped.
    moved = tmp_path / "moved"
    shutil.move(str(clone), moved)
    stats = index_repository(moved)
    assert stats.reused == stats.changed == len(SOURCES) + 1
    assert search_code(moved, "clone_only_helper", k=1)[0].path == "only/in_clone.py"

    # Deleted: the next index run of any repository drops its map and the contents only it had.
    shutil.rmtree(moved)
    assert index_repository(first).changed == 0
    assert _contents(first) == len(SOURCES)
    assert search_code(first, "restockShelf", k=1)[0].path == "src/main/java/Inventory.java"
    assert search_code(first, "clone_only_helper", k=3) == []
    with sqlite3.connect(store_path(open_repository(first))) as db:
        assert db.execute("SELECT count(*) FROM repos").fetchone() == (1,)


_RUN = """
import json, sys
from pathlib import Path
from tasks.indexing import index_repository, search_code
stats = index_repository(Path(sys.argv[1]), workers=2)
hit = search_code(Path(sys.argv[1]), sys.argv[2], k=1)[0]
print(json.dumps({**stats.as_dict(), "store": stats.store, "hit": hit.path}))
"""


@pytest.mark.slow
def test_two_repositories_indexed_at_the_same_time_both_finish(make_repo: MakeRepo) -> None:
    shop = make_repo({f"shop/order_{i:03d}.py": f"def place_order_{i}(cart):\n    return cart\n" for i in range(80)})
    bank = make_repo({f"bank/ledger_{i:03d}.py": f"def post_entry_{i}(book):\n    return book\n" for i in range(80)})
    runs = [
        subprocess.Popen([sys.executable, "-c", _RUN, str(repo), query], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for repo, query in ((shop, "place_order_42"), (bank, "post_entry_17"))
    ]
    outputs = [run.communicate(timeout=240) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err.decode() for _, err in outputs]
    results = [json.loads(out) for out, _ in outputs]
    assert [(r["files"], r["changed"]) for r in results] == [(80, 80), (80, 80)]
    assert results[0]["store"] == results[1]["store"]  # one shared store, written by both in turn
    assert [r["hit"] for r in results] == ["shop/order_042.py", "bank/ledger_017.py"]
    with sqlite3.connect(results[0]["store"]) as db:
        assert db.execute("SELECT count(*), count(DISTINCT repo_id) FROM files").fetchone() == (160, 2)
        db.execute("INSERT INTO chunks_fts (chunks_fts, rank) VALUES ('integrity-check', 0)")
    assert index_repository(shop).changed == index_repository(bank).changed == 0
