from __future__ import annotations

import os
from pathlib import Path

import pytest

from tasks.codegen.apply import UnsafeEditError, apply_edits, plan_edits
from tasks.codegen.parser import FileEdit, SearchReplace, parse_reply

FENCE = "```"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / ".git" / "hooks").mkdir(parents=True)
    (root / "pkg").mkdir()
    (root / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (root / "pkg" / "util.py").write_text("X = 1\nY = 1\n")
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()
    }


def sr(path: str, search: str, replace: str) -> FileEdit:
    return FileEdit(path=path, kind="search_replace", blocks=(SearchReplace(search, replace),))


def test_reply_applies_search_replace_and_creates_files(repo: Path) -> None:
    reply = (
        f"calc.py\n{FENCE}python\n<<<<<<< SEARCH\n    return a - b\n"
        f"=======\n    return a + b\n>>>>>>> REPLACE\n{FENCE}\n"
        f"pkg/new/mod.py\n{FENCE}\nZ = 3\n{FENCE}\n"
    )
    plan = apply_edits(repo, parse_reply(reply).edits)
    assert plan.ok
    assert (repo / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    assert (repo / "pkg" / "new" / "mod.py").read_text() == "Z = 3\n"
    assert [w.created for w in plan.writes] == [False, True]


def test_search_that_misses_or_repeats_writes_nothing_and_explains(repo: Path) -> None:
    before = snapshot(repo)
    edits = [
        FileEdit(path="pkg/new.py", kind="whole", content="ok\n"),
        sr("calc.py", "return a * b\n", "x\n"),
        sr("pkg/util.py", "= 1\n", "= 2\n"),
    ]
    plan = apply_edits(repo, edits)
    assert not plan.ok
    messages = [str(p) for p in plan.problems]
    assert "calc.py: the SEARCH text does not match" in messages[0]
    assert "pkg/util.py: the SEARCH text matches 2 times" in messages[1]
    assert snapshot(repo) == before


def test_trailing_whitespace_differences_still_match_once(repo: Path) -> None:
    (repo / "calc.py").write_text("def add(a, b):   \n    return a - b\n")
    apply_edits(repo, [sr("calc.py", "def add(a, b):\n    return a - b\n", "def add(a, b):\n    return a + b\n")])
    assert (repo / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"


def test_edits_of_one_file_chain_in_order(repo: Path) -> None:
    apply_edits(repo, [sr("pkg/util.py", "X = 1\n", "X = 2\n"), sr("pkg/util.py", "X = 2\nY = 1\n", "X = 3\n")])
    assert (repo / "pkg" / "util.py").read_text() == "X = 3\n"


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("../outside.py", "'..' is not allowed"),
        ("pkg/../../outside.py", "'..' is not allowed"),
        ("/tmp/evil.py", "absolute paths are not allowed"),
        ("~/.bashrc", "absolute paths are not allowed"),
        (".git/hooks/pre-commit", "under .git/"),
        ("pkg/.GIT/config", "under .git/"),
        (".git", "under .git/"),
        ("sub/.git", "under .git/"),
        ("pkg/.Git/hooks/post-commit", "under .git/"),
        (".git./config", "under .git/"),
        ("git~1/config", "under .git/"),
        (".g\u200cit/config", "under .git/"),
        ("pkg\\..\\x.py", "backslashes"),
        ("x\ud800.py", "not valid UTF-8"),
    ],
)
def test_hostile_paths_are_refused_and_nothing_is_written(repo: Path, path: str, reason: str) -> None:
    before = snapshot(repo)
    good = FileEdit(path="calc.py", kind="whole", content="fine\n")
    with pytest.raises(UnsafeEditError, match="nothing was written") as info:
        apply_edits(repo, [good, FileEdit(path=path, kind="whole", content="#!/bin/sh\nrm -rf /\n")])
    assert reason in str(info.value)
    assert snapshot(repo) == before
    assert not (repo.parent / "outside.py").exists()


def test_symlinks_anywhere_on_the_way_are_refused(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo / "escape").symlink_to(outside, target_is_directory=True)
    (repo / "hooks").symlink_to(repo / ".git" / "hooks", target_is_directory=True)
    (repo / "link.py").symlink_to(repo / "calc.py")
    # Even a link that stays inside the tree: the edit's path would not be the file that changes.
    (repo / "alias").symlink_to(repo / "pkg", target_is_directory=True)
    (repo / "pkg" / "up").symlink_to(repo, target_is_directory=True)
    for path, reason in (
        ("escape/pwn.py", "escape is a symbolic link"),
        ("hooks/pre-commit", "hooks is a symbolic link"),
        ("link.py", "the path is a symbolic link"),
        ("alias/extra.py", "alias is a symbolic link"),
        ("pkg/up/pkg/util.py", "pkg/up is a symbolic link"),
    ):
        before = snapshot(repo)
        with pytest.raises(UnsafeEditError, match=reason):
            apply_edits(repo, [FileEdit(path="calc.py", kind="whole", content="ok\n"), sr(path, "", "x\n")])
        assert snapshot(repo) == before
    assert list(outside.iterdir()) == []
    assert not (repo / ".git" / "hooks" / "pre-commit").exists()
    assert not (repo / "pkg" / "extra.py").exists()


def test_git_metadata_names_that_are_not_git_itself_are_fine(repo: Path) -> None:
    apply_edits(
        repo,
        [
            FileEdit(path=".gitmodules", kind="whole", content="\n"),
            FileEdit(path=".github/workflows/ci.yml", kind="whole", content="on: push\n"),
            FileEdit(path="pkg/.gitignore", kind="whole", content="*.pyc\n"),
        ],
    )
    assert (repo / ".gitmodules").read_text() == "\n"
    assert (repo / "pkg" / ".gitignore").read_text() == "*.pyc\n"


def test_binary_and_oversize_content_are_refused(repo: Path) -> None:
    before = snapshot(repo)
    with pytest.raises(UnsafeEditError, match="binary content"):
        apply_edits(repo, [FileEdit(path="blob.bin", kind="whole", content="\x7fELF\x00\x00")])
    with pytest.raises(UnsafeEditError, match="over the cap of 100"):
        apply_edits(repo, [FileEdit(path="big.py", kind="whole", content="x" * 101)], max_file_bytes=100)
    (repo / "data.bin").write_bytes(b"\x00\x01\x02")
    with pytest.raises(UnsafeEditError, match="the file is binary"):
        apply_edits(repo, [sr("data.bin", "\x01", "\x02")])
    (repo / "data.bin").unlink()
    assert snapshot(repo) == before


def test_every_refusal_is_listed(repo: Path) -> None:
    with pytest.raises(UnsafeEditError) as info:
        plan_edits(
            repo,
            [FileEdit(path="../a", kind="whole", content=""), FileEdit(path=".git/config", kind="whole", content="")],
        )
    assert len(info.value.refusals) == 2


def test_written_files_keep_their_mode(repo: Path) -> None:
    script = repo / "run.sh"
    script.write_text("echo old\n")
    script.chmod(0o755)
    apply_edits(repo, [FileEdit(path="run.sh", kind="whole", content="echo new\n")])
    assert os.stat(script).st_mode & 0o777 == 0o755
    assert not [p for p in repo.iterdir() if p.name.startswith(".vibe-edit-")]
