"""Chunks follow symbol boundaries with a cap; text without symbols is cut by lines."""

from __future__ import annotations

from tasks.indexing.chunking import chunk_text
from tasks.indexing.symbols import extract_symbols


def _python_chunks(source: str, max_lines: int = 80) -> list[tuple[int, int, str | None]]:
    defs = extract_symbols("python", source.encode()).defs
    return [(c.start_line, c.end_line, c.symbol) for c in chunk_text(source, defs, max_lines=max_lines)]


def _method(name: str, body_lines: int) -> str:
    body = "".join(f"        total_{i} = {i}\n" for i in range(body_lines))
    return f"    def {name}(self):\n{body}        return 0\n\n"


def test_a_class_over_the_cap_is_split_into_its_methods_with_qualified_names() -> None:
    source = (
        "import os\n\n\n"
        "class Inventory:\n"
        '    """Header docstring."""\n\n'
        + _method("first_method", 30)
        + "    @property\n"
        + _method("second_method", 30)
        + "\ndef tail_function():\n    return 1\n"
    )
    chunks = _python_chunks(source, max_lines=40)
    symbols = [symbol for _, _, symbol in chunks]
    assert symbols == [None, "Inventory", "Inventory.first_method", "Inventory.second_method", "tail_function"]
    lines = source.split("\n")
    second = next(c for c in chunks if c[2] == "Inventory.second_method")
    assert lines[second[0] - 1].strip() == "@property"  # decorators travel with their definition
    assert all(end - start + 1 <= 40 for start, end, _ in chunks)


def test_a_function_over_the_cap_without_nested_definitions_is_cut_into_windows() -> None:
    source = "def long_function():\n" + "".join(f"    x_{i} = {i}\n" for i in range(100))
    chunks = _python_chunks(source, max_lines=40)
    assert [(s, e) for s, e, _ in chunks] == [(1, 40), (41, 80), (81, 101)]
    assert {symbol for _, _, symbol in chunks} == {"long_function"}


def test_plain_text_is_cut_by_lines_and_blank_edges_are_dropped() -> None:
    text = "\n\n" + "".join(f"line {i}\n" for i in range(1, 121)) + "\n\n"
    chunks = chunk_text(text, max_lines=50)
    assert [(c.start_line, c.end_line) for c in chunks] == [(3, 52), (53, 102), (103, 122)]
    assert all(c.symbol is None for c in chunks)


def test_one_enormous_line_is_capped_in_characters() -> None:
    chunks = chunk_text("x" * 50_000 + "\nshort\n", max_chars=6000)
    assert all(len(c.text) <= 6000 for c in chunks)
    assert chunks[-1].text == "short"


def test_chunks_carry_identifier_words_and_defined_names_for_search() -> None:
    source = "def getUserName(account_id):\n    return lookup_table[account_id]\n"
    (chunk,) = chunk_text(source, extract_symbols("python", source.encode()).defs)
    assert {"get", "user", "name", "account", "id", "lookup", "table"} <= set(chunk.parts.split())
    assert chunk.defs.split()[0] == "getUserName"


def test_an_empty_file_has_no_chunks() -> None:
    assert chunk_text("") == []
    assert chunk_text("\n\n") == []
