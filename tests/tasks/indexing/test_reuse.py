"""Index reuse by content: clones, worktrees and branches sharing one store analyse only unseen blobs."""

from __future__ import annotations

from pathlib import Path

from tasks.indexing import index_repository, search_code
from tests.tasks.indexing.conftest import SOURCES, MakeRepo, git, write


def test_a_second_clone_in_a_shared_store_links_every_file_and_searches_its_own_paths(
    make_repo: MakeRepo, tmp_path: Path
) -> None:
    shared = tmp_path / "home" / "index"
    first = make_repo()
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(first), str(clone))
    one = index_repository(first, store_dir=shared)
    two = index_repository(clone, store_dir=shared)
    assert one.reused == 0
    assert two.reused == two.changed == len(SOURCES)
    assert (two.files, two.symbols, two.chunks) == (one.files, one.symbols, one.chunks)
    assert search_code(clone, "restockShelf", k=1, store_dir=shared)[0].path == "src/main/java/Inventory.java"
    assert index_repository(clone, store_dir=shared).changed == 0


def test_an_edit_in_one_clone_leaves_the_other_as_it_was(make_repo: MakeRepo, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    first = make_repo()
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(first), str(clone))
    index_repository(first, store_dir=shared)
    index_repository(clone, store_dir=shared)
    write(clone, {"app/models.py": "def brand_new_helper():\n    return 1\n"})
    (clone / "app" / "service.py").unlink()
    edited = index_repository(clone, store_dir=shared)
    assert (edited.changed, edited.reused) == (2, 0)
    assert search_code(clone, "brand_new_helper", k=1, store_dir=shared)[0].path == "app/models.py"
    assert search_code(first, "brand_new_helper", k=3, store_dir=shared) == []
    # The first clone still has the file the second deleted, and its old content.
    assert search_code(first, "create_account", k=1, store_dir=shared)[0].path in {"app/models.py", "app/service.py"}
    assert index_repository(first, store_dir=shared).changed == 0


def test_another_branch_analyses_only_the_files_it_changed(make_repo: MakeRepo, tmp_path: Path) -> None:
    repo = make_repo()
    worktree = tmp_path / "feature"
    git(repo, "worktree", "add", "-q", "-b", "feature", str(worktree))
    write(worktree, {"app/service.py": "def register_twice(name):\n    return name * 2\n"})
    git(worktree, "commit", "-q", "-am", "twice")
    shared = tmp_path / "shared"
    index_repository(repo, store_dir=shared)
    stats = index_repository(worktree, store_dir=shared)
    assert (stats.changed, stats.reused) == (len(SOURCES), len(SOURCES) - 1)
    assert search_code(worktree, "register_twice", k=1, store_dir=shared)[0].path == "app/service.py"
    assert search_code(repo, "register_twice", k=1, store_dir=shared) == []


def test_a_full_reindex_of_one_clone_keeps_the_other_searchable(make_repo: MakeRepo, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    first = make_repo()
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(first), str(clone))
    index_repository(first, store_dir=shared)
    index_repository(clone, store_dir=shared)
    again = index_repository(clone, store_dir=shared, full=True)
    assert (again.changed, again.reused) == (len(SOURCES), 0)
    assert search_code(first, "restockShelf", k=1, store_dir=shared)[0].path == "src/main/java/Inventory.java"
    assert len(search_code(first, "restockShelf", k=5, store_dir=shared)) == 1
