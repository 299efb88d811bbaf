from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.codegen.parser import FileEdit, ParseResult, clean_path_line, parse_reply

FENCE = "```"


def test_search_replace_block_is_read_with_its_path() -> None:
    reply = f"""I fixed the sign.

calc.py
{FENCE}python
<<<<<<< SEARCH
    return a - b
=======
    return a + b
>>>>>>> REPLACE
{FENCE}
"""
    result = parse_reply(reply)
    assert result.ok
    (edit,) = result.edits
    assert edit.path == "calc.py"
    assert edit.kind == "search_replace"
    assert edit.blocks[0].search == "    return a - b\n"
    assert edit.blocks[0].replace == "    return a + b\n"


def test_whole_file_and_several_blocks_in_one_reply() -> None:
    reply = f"""src/pkg/new.py
{FENCE}python
def hello() -> str:
    return "hi"
{FENCE}

**`calc.py`**:
{FENCE}
<<<<<<< SEARCH
a = 1
=======
a = 2
>>>>>>> REPLACE

<<<<<<< SEARCH
b = 1
=======
>>>>>>> REPLACE
{FENCE}
"""
    result = parse_reply(reply)
    assert not result.problems
    whole, sr = result.edits
    assert whole == FileEdit(
        path="src/pkg/new.py", kind="whole", content='def hello() -> str:\n    return "hi"\n', line=1
    )
    assert sr.path == "calc.py"
    assert [(b.search, b.replace) for b in sr.blocks] == [("a = 1\n", "a = 2\n"), ("b = 1\n", "")]


def test_a_fence_inside_search_text_does_not_end_the_block() -> None:
    reply = f"""README.md
{FENCE}
<<<<<<< SEARCH
{FENCE}sh
make old
{FENCE}
=======
{FENCE}sh
make new
{FENCE}
>>>>>>> REPLACE
{FENCE}
"""
    result = parse_reply(reply)
    assert result.ok
    assert result.edits[0].blocks[0].replace == f"{FENCE}sh\nmake new\n{FENCE}\n"


def test_four_backtick_fence_holds_a_file_with_triple_backticks() -> None:
    reply = f"docs/guide.md\n````markdown\n# Guide\n{FENCE}\ncode\n{FENCE}\n````\n"
    (edit,) = parse_reply(reply).edits
    assert edit.content == f"# Guide\n{FENCE}\ncode\n{FENCE}\n"


def test_a_path_in_the_fence_info_string_is_accepted() -> None:
    reply = f"Here it is:\n{FENCE}python:pkg/a.py\nA = 1\n{FENCE}\n\n{FENCE}b.py\nB = 2\n{FENCE}\n"
    assert [(e.path, e.content) for e in parse_reply(reply).edits] == [("pkg/a.py", "A = 1\n"), ("b.py", "B = 2\n")]


def test_code_without_a_path_line_is_explanation_and_skipped() -> None:
    reply = f"Run this:\n\n{FENCE}sh\npytest -q\n{FENCE}\nDone."
    result = parse_reply(reply)
    assert result.edits == ()
    assert result.problems == ()
    assert not result.ok


def test_malformed_blocks_become_problems_not_exceptions() -> None:
    missing_divider = f"calc.py\n{FENCE}\n<<<<<<< SEARCH\nx\n>>>>>>> REPLACE\n{FENCE}\n"
    unclosed = f"calc.py\n{FENCE}\n<<<<<<< SEARCH\nx\n=======\ny\n{FENCE}\n"
    no_path = f"Here:\n{FENCE}\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n{FENCE}\n"
    open_fence = f"calc.py\n{FENCE}\nprint(1)\n"
    for reply, expected in (
        (missing_divider, "expected ======="),
        (unclosed, "not closed"),
        (no_path, "without a file path"),
        (open_fence, "not closed"),
    ):
        result = parse_reply(reply)
        assert result.edits == ()
        assert any(expected in str(p) for p in result.problems), (reply, result.problems)


def test_hostile_paths_are_parsed_as_written_for_the_apply_step_to_refuse() -> None:
    reply = (
        f"../../etc/passwd\n{FENCE}\nroot::0:0\n{FENCE}\n/abs/x.py\n{FENCE}\nx\n{FENCE}\n"
        f".git/hooks/pre-commit\n{FENCE}\nx\n{FENCE}\n"
    )
    assert [e.path for e in parse_reply(reply).edits] == ["../../etc/passwd", "/abs/x.py", ".git/hooks/pre-commit"]


def test_path_line_cleaning() -> None:
    assert clean_path_line("### `pkg/mod.py`") == "pkg/mod.py"
    assert clean_path_line("File: Makefile") == "Makefile"
    assert clean_path_line("Here is the fix:") is None
    assert clean_path_line("Done") is None
    assert clean_path_line("dir/") is None


def test_crlf_replies_parse_like_lf() -> None:
    reply = f"a.py\r\n{FENCE}\r\n<<<<<<< SEARCH\r\nx = 1\r\n=======\r\nx = 2\r\n>>>>>>> REPLACE\r\n{FENCE}\r\n"
    (edit,) = parse_reply(reply).edits
    assert edit.blocks[0].search == "x = 1\n"


_pieces = st.sampled_from(
    [
        "calc.py",
        "../x",
        "/etc/passwd",
        FENCE,
        FENCE + "python",
        "````",
        "~~~",
        "<<<<<<< SEARCH",
        "=======",
        ">>>>>>> REPLACE",
        "<<<<<<<SEARCH",
        "",
        "    return a - b",
        "**`a/b.py`**:",
        "\x00",
        "\r",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_pieces, st.text(max_size=40)), max_size=40))
def test_fuzz_structured_replies_never_crash(parts: list[str]) -> None:
    result = parse_reply("\n".join(parts))
    assert isinstance(result, ParseResult)
    for edit in result.edits:
        assert edit.path
        assert (edit.kind == "whole") or edit.blocks
    for problem in result.problems:
        assert problem.message


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=2000))
def test_fuzz_arbitrary_text_never_crashes(text: str) -> None:
    result = parse_reply(text)
    assert isinstance(result, ParseResult)
