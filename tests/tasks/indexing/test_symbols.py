"""Tag extraction per language: the definitions and references a repo map and chunking rely on."""

from __future__ import annotations

import pytest

from tasks.indexing.symbols import extract_symbols, language_for, supported_languages
from tests.tasks.indexing.conftest import SOURCES


def _defs(language: str, source: str) -> set[tuple[str, str]]:
    return {(d.name, d.kind) for d in extract_symbols(language, source.encode()).defs}


def _refs(language: str, source: str) -> set[str]:
    return set(extract_symbols(language, source.encode()).refs)


def test_every_promised_language_has_a_grammar_and_a_query() -> None:
    assert {"python", "javascript", "typescript", "tsx", "go", "rust", "java"} <= set(supported_languages())
    assert language_for("a/b.py") == "python"
    assert language_for("x.tsx") == "tsx"
    assert language_for("README.md") is None


@pytest.mark.parametrize(
    ("path", "defs", "refs"),
    [
        (
            "app/models.py",
            {("UserAccount", "class"), ("get_display_name", "function"), ("create_account", "function"),
             ("MAX_USERS", "constant")},
            {"UserAccount", "title"},
        ),
        ("app/service.py", {("register", "function")}, {"create_account", "get_display_name"}),
        (
            "web/client.js",
            {("fetchUserProfile", "function"), ("ProfileCache", "class"), ("lookupEntry", "method"),
             ("parseHeaderLine", "function")},
            {"request", "get", "split"},
        ),
        (
            "web/types.ts",
            {("OrderSummary", "interface"), ("OrderId", "type"), ("OrderState", "enum"), ("OrderBook", "class"),
             ("computeTotals", "method")},
            {"reduce", "OrderSummary"},
        ),
        (
            "cmd/server.go",
            {("RequestRouter", "type"), ("HandleRoute", "method"), ("NewRequestRouter", "function")},
            {"Println", "RequestRouter"},
        ),
        (
            "src/lib.rs",
            {("RingBuffer", "class"), ("Drainable", "interface"), ("drain_all", "function"), ("RingBuffer", "impl"),
             ("push_item", "function"), ("make_ring_buffer", "function")},
            {"push", "RingBuffer", "Vec"},
        ),
        (
            "src/main/java/Inventory.java",
            {("Inventory", "class"), ("restockShelf", "method"), ("StockListener", "interface"),
             ("onStockChange", "method")},
            set(),
        ),
    ],
)
def test_definitions_and_references_per_language(path: str, defs: set[tuple[str, str]], refs: set[str]) -> None:
    language = language_for(path)
    assert language is not None
    found = _defs(language, SOURCES[path])
    assert defs <= found
    assert refs <= _refs(language, SOURCES[path])


def test_a_definition_name_is_not_counted_as_a_reference_to_itself() -> None:
    refs = extract_symbols("go", b"package p\ntype Widget struct{}\nfunc Use(w Widget) {}\n").refs
    assert refs["Widget"] == 1  # the parameter's type, not the type's own name


def test_java_calls_and_constructors_are_references() -> None:
    source = "class A { void run() { Inventory inv = new Inventory(); inv.restockShelf(3); } }"
    assert {"Inventory", "restockShelf"} <= _refs("java", source)


def test_tsx_files_parse_with_the_tsx_grammar() -> None:
    source = "export function ProfileCard(props: CardProps) { return <div>{props.name}</div>; }\n"
    assert ("ProfileCard", "function") in _defs("tsx", source)
    assert "CardProps" in _refs("tsx", source)


def test_garbage_input_still_returns_what_it_can() -> None:
    symbols = extract_symbols("python", b"def ok():\n    pass\n\n)))(((\n\x00\x01 def\n")
    assert [d.name for d in symbols.defs] == ["ok"]
    assert symbols.has_errors


def test_a_name_two_patterns_capture_counts_once() -> None:
    refs = extract_symbols("java", b"class A { Object make() { return new Widget(); } }").refs
    assert refs["Widget"] == 1  # both the constructor pattern and the type pattern see it
