"""Every way real models write a change is read for what it means, and nothing else: diffs, info-string paths,
tolerant SEARCH matching, whole files only when they are whole, paths as models write them (issue 13)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.codegen.apply import UnsafeEditError, apply_reply
from tasks.codegen.parser import ParseResult, parse_reply
from tasks.codegen.paths import PathRules

F = "```"
MODULE = (
    "def first(seq):\n    return next(iter(seq))\n\n\n"
    "def second(seq):\n    seq = iter(seq)\n    next(seq)\n    return next(seq)\n\n\n"
    "def third(seq):\n    return seq[2]\n"
)
FIXED = MODULE.replace("    return seq[2]\n", "    return list(seq)[2]\n")
TESTS = "".join(f"def test_{n}():\n    assert {n} == {n}\n\n\n" for n in range(12))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "toolz"
    (root / "toolz" / "tests").mkdir(parents=True)
    (root / "toolz" / "itertoolz.py").write_text(MODULE)
    (root / "toolz" / "tests" / "test_itertoolz.py").write_text(TESTS)
    return root


def rules(root: Path) -> PathRules:
    return PathRules(repo_name=root.name, aliases=(Path("/home/dev/toolz"),), outside="problem")


def module(root: Path) -> str:
    return (root / "toolz" / "itertoolz.py").read_text()


def test_a_diff_fence_after_a_path_line_is_a_diff_not_the_content(repo: Path) -> None:
    reply = (
        f"toolz/itertoolz.py\n{F}diff\n--- a/toolz/itertoolz.py\n+++ b/toolz/itertoolz.py\n"
        f"@@ -11,2 +11,2 @@\n def third(seq):\n-    return seq[2]\n+    return list(seq)[2]\n{F}\n"
    )
    applied = apply_reply(repo, reply, rules=rules(repo))
    assert applied.written == ("toolz/itertoolz.py",)
    assert module(repo) == FIXED


@pytest.mark.parametrize("header", ["@@ -400,7 +400,7 @@", "@@ ... @@", "@@ -1 +1 @@ def third"])
def test_diff_line_numbers_are_hints_only(repo: Path, header: str) -> None:
    reply = (
        f"{F}diff\n--- toolz/itertoolz.py\n+++ toolz/itertoolz.py\n{header}\n def third(seq):\n"
        f"-    return seq[2]\n+    return list(seq)[2]\n{F}\n"
    )
    assert apply_reply(repo, reply).written == ("toolz/itertoolz.py",)
    assert module(repo) == FIXED


def test_a_diff_with_several_files_and_hunks_and_a_new_file(repo: Path) -> None:
    reply = (
        f"{F}diff\ndiff --git a/toolz/itertoolz.py b/toolz/itertoolz.py\n--- a/toolz/itertoolz.py\n"
        f"+++ b/toolz/itertoolz.py\n@@ -1,2 +1,2 @@\n def first(seq):\n-    return next(iter(seq))\n"
        f"+    return next(iter(seq), None)\n\n@@ -11,2 +11,2 @@\n def third(seq):\n-    return seq[2]\n"
        f"+    return list(seq)[2]\n--- /dev/null\n+++ b/toolz/extra.py\n@@ -0,0 +1,1 @@\n+X = 1\n{F}\n"
    )
    applied = apply_reply(repo, reply)
    assert applied.problems == ()
    assert module(repo) == FIXED.replace("next(iter(seq))", "next(iter(seq), None)")
    assert (repo / "toolz" / "extra.py").read_text() == "X = 1\n"


def test_a_diff_that_does_not_match_changes_nothing_and_names_the_closest_lines(repo: Path) -> None:
    reply = f"toolz/itertoolz.py\n{F}diff\n@@ -11,2 +11,2 @@\n def thrid(seq):\n-    return sq[2]\n+    return 3\n{F}\n"
    applied = apply_reply(repo, reply)
    assert applied.written == ()
    assert "closest lines in the file (11-12)" in applied.problems[0]
    assert module(repo) == MODULE


def test_deleting_a_file_by_diff_is_a_problem(repo: Path) -> None:
    reply = f"{F}diff\n--- a/toolz/itertoolz.py\n+++ /dev/null\n@@ -1,1 +0,0 @@\n-def first(seq):\n{F}\n"
    assert "deleting a file is not supported" in apply_reply(repo, reply).problems[0]
    assert module(repo) == MODULE


@pytest.mark.parametrize(
    "opener", [f'{F}python title="toolz/itertoolz.py"', f"{F}python:toolz/itertoolz.py", f"{F}toolz/itertoolz.py",
               f"{F}python file=toolz/itertoolz.py"],
)  # fmt: skip
def test_the_path_in_the_fence_info_string(repo: Path, opener: str) -> None:
    reply = (
        f"Here is the fix.\n\n{opener}\n<<<<<<< SEARCH\n    return seq[2]\n=======\n    return list(seq)[2]\n"
        f">>>>>>> REPLACE\n{F}\n"
    )
    assert apply_reply(repo, reply).written == ("toolz/itertoolz.py",)
    assert module(repo) == FIXED


def sr(search: str, replace: str, path: str = "toolz/itertoolz.py") -> str:
    return f"{path}\n{F}python\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n{F}\n"


def test_search_indented_uniformly_less_is_re_indented(repo: Path) -> None:
    applied = apply_reply(repo, sr("seq = iter(seq)\nnext(seq)\n", "seq = iter(seq)\nnext(seq, None)\n"))
    assert applied.problems == ()
    assert "    seq = iter(seq)\n    next(seq, None)\n    return next(seq)\n" in module(repo)


def test_search_indented_uniformly_more_is_re_indented(repo: Path) -> None:
    applied = apply_reply(repo, sr("        def third(seq):\n            return seq[2]\n",
                                   "        def third(seq):\n            return list(seq)[2]\n"))  # fmt: skip
    assert applied.problems == ()
    assert module(repo) == FIXED


def test_elision_lines_inside_search_and_replace(repo: Path) -> None:
    search = "def second(seq):\n    ...\n    return next(seq)\n"
    applied = apply_reply(repo, sr(search, search.replace("next(seq)\n", "next(seq, None)\n")))
    assert applied.problems == ()
    assert module(repo) == MODULE.replace("    return next(seq)\n", "    return next(seq, None)\n")


def test_an_elision_piece_that_matches_twice_is_a_problem(repo: Path) -> None:
    search = "def first(seq):\n...\n    return next(seq)\n...\n    return next(seq)\n"
    applied = apply_reply(repo, sr(search, search.replace("(seq)\n", "(x)\n")))
    assert applied.written == ()
    assert module(repo) == MODULE


def test_trailing_whitespace_and_a_final_blank_line_add_no_blank_line(repo: Path) -> None:
    (repo / "toolz" / "itertoolz.py").write_text(MODULE.replace("def third(seq):\n", "def third(seq):   \n"))
    search = "def third(seq):\n    return seq[2]\n\n"
    applied = apply_reply(repo, sr(search, search.replace("seq[2]", "list(seq)[2]")))
    assert applied.problems == ()
    assert module(repo) == FIXED


def test_a_search_matching_twice_after_tolerance_is_a_problem(repo: Path) -> None:
    (repo / "dup.py").write_text("if a:\n    x = 1\nif b:\n        x = 1\n")
    applied = apply_reply(repo, sr("x = 1\n", "x = 2\n", path="dup.py"))
    assert applied.written == ()
    assert "matches 2 times" in applied.problems[0]


@pytest.mark.parametrize(
    "marker",
    ["# ... rest of file unchanged ...", "# ...", "    # existing code here", "// ...", "/* ... */", "<!-- ... -->",
     "# rest of the functions unchanged", "..."],
)  # fmt: skip
def test_an_elided_whole_file_is_refused_back_to_the_model(repo: Path, marker: str) -> None:
    reply = f"toolz/itertoolz.py\n{F}python\n{FIXED.replace('def second', marker + chr(10) + 'def second')}{F}\n"
    applied = apply_reply(repo, reply)
    assert applied.written == ()
    assert "elides code" in applied.problems[0]
    assert module(repo) == MODULE


def test_an_ellipsis_the_file_already_has_is_not_an_elision(repo: Path) -> None:
    stub = "class P:\n    def f(self) -> int:\n        ...\n"
    (repo / "proto.py").write_text(stub)
    applied = apply_reply(repo, f"proto.py\n{F}python\n{stub}    def g(self) -> int:\n        ...\n{F}\n")
    assert applied.written == ("proto.py",)


def test_a_quoted_test_for_reference_changes_nothing_and_the_fix_applies(repo: Path) -> None:
    reply = (
        "The bug is in `third`:\n\n" + sr("    return seq[2]\n", "    return list(seq)[2]\n")
        + "\nFor reference, the failing test in\n`toolz/tests/test_itertoolz.py`:\n"
        f"{F}python\ndef test_3():\n    assert 3 == 3\n{F}\n"
    )
    applied = apply_reply(repo, reply)
    assert applied.written == ("toolz/itertoolz.py",)
    assert (repo / "toolz" / "tests" / "test_itertoolz.py").read_text() == TESTS
    assert any("quotes part of the file" in note for note in applied.notes)


def test_a_quoted_function_under_a_path_line_changes_nothing(repo: Path) -> None:
    applied = apply_reply(repo, f"toolz/itertoolz.py\n{F}python\ndef third(seq):\n    return seq[2]\n{F}\n")
    assert applied.written == ()
    assert "changes no file" in applied.problems[0]
    assert module(repo) == MODULE


def test_a_sharply_shorter_whole_file_is_a_fragment_unless_the_request_cuts(repo: Path) -> None:
    reply = f"toolz/tests/test_itertoolz.py\n{F}python\ndef test_0():\n    assert 0 == 1\n{F}\n"
    applied = apply_reply(repo, reply)
    assert "read as a fragment" in applied.problems[0]
    assert (repo / "toolz" / "tests" / "test_itertoolz.py").read_text() == TESTS
    assert apply_reply(repo, reply, allow_shrink=True).written == ("toolz/tests/test_itertoolz.py",)


def test_a_whole_file_that_is_the_whole_file_is_written(repo: Path) -> None:
    assert apply_reply(repo, f"toolz/itertoolz.py\n{F}python\n{FIXED}{F}\n").written == ("toolz/itertoolz.py",)
    assert module(repo) == FIXED


def test_a_repo_prefixed_path_is_the_unprefixed_file(repo: Path) -> None:
    applied = apply_reply(repo, f"toolz/toolz/itertoolz.py\n{F}python\n{FIXED}{F}\n", rules=rules(repo))
    assert applied.written == ("toolz/itertoolz.py",)
    assert module(repo) == FIXED
    assert not (repo / "toolz" / "toolz").exists()


def test_a_new_file_that_merely_prefixes_an_existing_path_is_a_problem(repo: Path) -> None:
    applied = apply_reply(repo, f"src/toolz/itertoolz.py\n{F}python\n{FIXED}{F}\n", rules=rules(repo))
    assert "toolz/itertoolz.py does" in applied.problems[0]
    assert not (repo / "src").exists()


def test_an_absolute_path_inside_the_repository_is_mapped(repo: Path) -> None:
    for root in (repo, Path("/home/dev/toolz")):
        (repo / "toolz" / "itertoolz.py").write_text(MODULE)
        applied = apply_reply(repo, f"{root}/toolz/itertoolz.py\n{F}python\n{FIXED}{F}\n", rules=rules(repo))
        assert applied.written == ("toolz/itertoolz.py",)
        assert module(repo) == FIXED


@pytest.mark.parametrize("path", ["/etc/itertoolz.py", "../toolz/itertoolz.py", "~/x.py", "toolz/../../x.py"])
def test_a_path_outside_the_tree_goes_back_to_the_model_and_is_never_written(repo: Path, path: str) -> None:
    applied = apply_reply(repo, f"{path}\n{F}python\nX = 1\n{F}\n", rules=rules(repo))
    assert applied.written == ()
    assert "nothing outside it is ever written" in applied.problems[0]
    assert not (repo.parent / "x.py").exists()


def test_hostile_paths_stay_refusals_even_when_absolute(repo: Path) -> None:
    (repo / ".git").mkdir()
    for path in (f"{repo}/.git/hooks/pre-commit", "../.git/config", "/home/dev/toolz/.git/config"):
        with pytest.raises(UnsafeEditError):
            apply_reply(repo, f"{path}\n{F}\n#!/bin/sh\n{F}\n", rules=rules(repo))
    (repo / "link").symlink_to(repo / "toolz", target_is_directory=True)
    with pytest.raises(UnsafeEditError, match="symbolic link"):
        apply_reply(repo, f"{repo}/link/x.py\n{F}\nX = 1\n{F}\n", rules=rules(repo))


_pieces = st.sampled_from(
    [F, F + "diff", F + 'python title="a.py"', "--- a/a.py", "+++ b/a.py", "--- /dev/null", "+++ /dev/null",
     "@@ -1,2 +1,2 @@", "@@ ... @@", "-x", "+y", " z", "", "a.py", "...", "# ... rest unchanged ...",
     "<<<<<<< SEARCH", "=======", ">>>>>>> REPLACE", "diff --git a/a.py b/a.py", "For reference:"],
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_pieces, st.text(max_size=20)), max_size=40))
def test_fuzz_diff_shaped_replies_never_crash(parts: list[str]) -> None:
    result = parse_reply("\n".join(parts))
    assert isinstance(result, ParseResult)
    for edit in result.edits:
        assert edit.path
        assert edit.kind == "whole" or edit.blocks


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(_pieces, st.text(max_size=20)), max_size=30))
def test_fuzz_applying_never_crashes_and_never_leaves_the_tree(tmp_path_factory: pytest.TempPathFactory,
                                                               parts: list[str]) -> None:  # fmt: skip
    root = tmp_path_factory.mktemp("fuzz") / "repo"
    root.mkdir()
    (root / "a.py").write_text("x\nz\n")
    with contextlib.suppress(UnsafeEditError):
        apply_reply(root, "\n".join(parts), rules=PathRules(repo_name="repo", outside="problem"))
    assert list(root.parent.iterdir()) == [root]
