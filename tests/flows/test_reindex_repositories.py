"""The scheduled re-index flow: index_codebase as a subflow per repository, failures reported, not fatal."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from flows.reindex_repositories import ReindexReport, reindex_repositories
from vibe.errors import InputError


def _repo(path: Path) -> Path:
    path.mkdir()
    (path / "app.py").write_text("def greet(name: str) -> str:\n    return f'hello {name}'\n")
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    subprocess.run(["git", "-C", str(path), "add", "."], check=True)
    subprocess.run(
        ["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "init"],
        check=True,
    )
    return path


@pytest.mark.usefixtures("prefect_harness")
def test_reindex_indexes_each_repository_and_names_the_ones_that_failed(tmp_path: Path) -> None:
    good = _repo(tmp_path / "good")
    results = reindex_repositories(repos=[str(good)])
    assert results.indexed[str(good)].files >= 1

    missing = tmp_path / "missing"
    with pytest.raises(InputError, match="could not re-index 1 of 2 repositories") as info:
        reindex_repositories(repos=[str(good), str(missing)])
    assert str(missing) in str(info.value)


@pytest.mark.usefixtures("prefect_harness")
def test_reindex_with_nothing_configured_does_nothing() -> None:
    assert reindex_repositories(repos=[]) == ReindexReport()
