"""The README tells the truth about configuration: every variable its table names is one the settings read."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import AliasChoices

from vibe.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def _variables_read() -> set[str]:
    names: set[str] = set()
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {c.upper() for c in alias.choices if isinstance(c, str)}
        else:
            names.add(f"VIBE_{field.upper()}")
    return names


def _configuration_table() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])]


def test_every_variable_in_the_configuration_table_is_read_by_the_settings() -> None:
    named = _configuration_table()
    assert len(named) > 30
    unknown = sorted(set(named) - _variables_read())
    assert unknown == [], f"the README names variables no setting reads: {unknown}"
