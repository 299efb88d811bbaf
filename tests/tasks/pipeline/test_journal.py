"""The run journal's bounds: no entry over the cap, the file bounded as a whole, nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.pipeline.journal import RunJournal
from vibe.errors import InputError


def test_an_entry_over_the_cap_is_refused_and_the_journal_is_unchanged(tmp_path: Path) -> None:
    journal = RunJournal(tmp_path, "k1", max_entry_bytes=10_000)
    journal.put("generate:1", {"reply": "fine"})
    before = (journal.directory / "journal.json").read_bytes()
    with pytest.raises(
        InputError, match=r"journal entry 'generate:2' of run k1 is 5000\d\d bytes of JSON, over the cap"
    ):
        journal.put("generate:2", {"reply": "x" * 500_000})
    assert (journal.directory / "journal.json").read_bytes() == before
    assert journal.get("generate:2") is None
    assert RunJournal(tmp_path, "k1").get("generate:2") is None
    assert sorted(p.name for p in journal.directory.iterdir()) == ["journal.json"]


def test_replacing_an_entry_with_an_oversize_one_keeps_the_old_one(tmp_path: Path) -> None:
    journal = RunJournal(tmp_path, "k1", max_entry_bytes=2_000)
    journal.put("tests:1", {"ok": False})
    with pytest.raises(InputError, match="'tests:1'"):
        journal.put("tests:1", {"ok": True, "output": "y" * 3_000})
    assert journal.get("tests:1") == {"ok": False}
    assert RunJournal(tmp_path, "k1").get("tests:1") == {"ok": False}


def test_the_cap_counts_utf8_bytes_as_written(tmp_path: Path) -> None:
    journal = RunJournal(tmp_path, "k1", max_entry_bytes=1_000)
    journal.put("generate:1", "é" * 450)  # 900 bytes of UTF-8, under the cap
    with pytest.raises(InputError, match="over the cap"):
        journal.put("generate:2", "é" * 500)  # 500 characters, but 1000+ bytes
    with pytest.raises(InputError, match="over the cap"):
        journal.put("generate:3", "\u0001" * 200)  # each control character is 6 bytes escaped
    assert RunJournal(tmp_path, "k1").get("generate:1") == "é" * 450


def test_the_journal_file_stays_under_its_total_cap(tmp_path: Path) -> None:
    journal = RunJournal(tmp_path, "k1", max_entry_bytes=1_000, max_total_bytes=2_500)
    journal.put("generate:1", "a" * 900)
    journal.put("generate:2", "b" * 900)
    with pytest.raises(InputError, match=r"would grow the journal of run k1 to \d+ bytes, over the cap of 2500"):
        journal.put("generate:3", "c" * 900)
    journal.put("generate:1", "a")  # replacing a step frees its room
    journal.put("generate:3", "c" * 900)
    size = (journal.directory / "journal.json").stat().st_size
    assert size <= 2_500
    assert [RunJournal(tmp_path, "k1").get(f"generate:{n}") for n in (1, 2, 3)] == ["a", "b" * 900, "c" * 900]


def test_values_round_trip_and_the_file_is_json_with_one_step_per_line(tmp_path: Path) -> None:
    journal = RunJournal(tmp_path, "k1")
    journal.put("base", "abc123")
    journal.put("step: with colon", {"path": tmp_path, "lone": "\ud800", "text": "line\nnext"})
    assert journal.get("step: with colon") == {"path": str(tmp_path), "lone": "\ud800", "text": "line\nnext"}
    raw = (journal.directory / "journal.json").read_text(encoding="utf-8")
    assert json.loads(raw)["steps"]["base"] == "abc123"
    assert len(raw.splitlines()) == 4
    assert RunJournal(tmp_path, "k1").get("step: with colon") == journal.get("step: with colon")


def test_invalid_bounds_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="invalid journal bounds"):
        RunJournal(tmp_path, "k1", max_entry_bytes=0)
    with pytest.raises(InputError, match="invalid journal bounds"):
        RunJournal(tmp_path, "k1", max_entry_bytes=100, max_total_bytes=50)
