"""`vibe index`, `vibe search`, `vibe map` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

import cli.index  # noqa: F401 - registers the commands
from cli._app import app
from tests.tasks.indexing.conftest import MakeRepo

runner = CliRunner()


def test_index_then_search_then_map_print_what_the_issue_promises(make_repo: MakeRepo) -> None:
    repo = make_repo()
    result = runner.invoke(app, ["index", str(repo), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert list(payload) == ["files", "changed", "symbols", "chunks", "skipped", "elapsed_s", "skipped_files"]
    assert payload["skipped_files"] == []
    assert payload["files"] == 8
    assert payload["changed"] == 8

    again = json.loads(runner.invoke(app, ["index", str(repo), "--json"]).stdout)
    assert again["changed"] == 0
    full = json.loads(runner.invoke(app, ["index", str(repo), "--full", "--json"]).stdout)
    assert full["changed"] == 8

    result = runner.invoke(app, ["search", "restockShelf", "--repo", str(repo), "-k", "2", "--json"])
    assert result.exit_code == 0, result.output
    results = json.loads(result.stdout)["results"]
    assert 1 <= len(results) <= 2
    assert set(results[0]) == {"path", "start_line", "end_line", "symbol", "score"}
    assert results[0]["path"] == "src/main/java/Inventory.java"

    human = runner.invoke(app, ["search", "HandleRoute", "--repo", str(repo / "cmd")])
    assert human.exit_code == 0
    assert human.stdout.startswith("cmd/server.go:")

    result = runner.invoke(app, ["map", "--repo", str(repo), "--tokens", "200"])
    assert result.exit_code == 0, result.output
    assert "app/models.py:" in result.stdout
    assert len(result.stdout) <= 200 * 4


def test_search_files_prints_ranked_files_with_their_best_lines(make_repo: MakeRepo) -> None:
    repo = make_repo()
    assert runner.invoke(app, ["index", str(repo)]).exit_code == 0
    result = runner.invoke(app, ["search", "display name of a user account", "--repo", str(repo), "--files", "--json"])
    assert result.exit_code == 0, result.output
    files = json.loads(result.stdout)["files"]
    assert files[0]["path"] == "app/models.py"
    assert len({file["path"] for file in files}) == len(files)
    assert files[0]["hits"][0]["symbol"] == "UserAccount"  # the class is small enough to be one chunk

    human = runner.invoke(app, ["search", "display name of a user account", "--repo", str(repo), "--files"])
    assert human.stdout.splitlines()[0].startswith("app/models.py  (")
    assert "class UserAccount" in human.stdout.splitlines()[1]


def test_human_index_output_lists_skips_and_problems(make_repo: MakeRepo) -> None:
    repo = make_repo({"ok.py": "def fine(): pass\n", "bad.py": b"def f():\n    return '\xff'\n", "pic.png": b"\0\1"})
    result = runner.invoke(app, ["index", str(repo)])
    assert result.exit_code == 0, result.output
    assert "indexed 2 files (3 changed)" in result.stdout
    assert "skipped: binary 1 (run with --verbose to list them)" in result.stdout
    assert "problem: bad.py: invalid UTF-8" in result.stdout
    assert "pic.png" not in result.stdout  # the default stays short


_SKIPPING = {
    "main.py": "def real_code():\n    return 1\n",
    "assets/logo.png": b"\x89PNG\r\n\x1a\n\0\0\0binary",
    "node_modules/lib/index.js": "function vendoredThing() {}\n",
    "big/huge.py": "x = 1\n" * 200_000,
}


def test_index_names_each_skipped_file_with_its_reason_in_json_and_verbose(make_repo: MakeRepo) -> None:
    repo = make_repo(dict(_SKIPPING))
    payload = json.loads(runner.invoke(app, ["index", str(repo), "--json"]).stdout)
    assert payload["skipped"] == 3
    assert payload["skipped_files"] == [
        {"path": "assets/logo.png", "reason": "binary"},
        {"path": "big/huge.py", "reason": "huge"},
        {"path": "node_modules/lib/index.js", "reason": "vendored"},
    ]
    # A second run changes nothing and still names them (they come from the index, not from this run's work).
    again = runner.invoke(app, ["index", str(repo), "-v"])
    assert again.exit_code == 0, again.output
    lines = again.stdout.splitlines()
    assert "skipped assets/logo.png: binary (a known binary extension, or a NUL byte in its first 8 KiB)" in lines
    assert "skipped big/huge.py: too large (over max_file_bytes)" in lines
    assert any(line.startswith("skipped node_modules/lib/index.js: vendored") for line in lines)
    assert "--verbose" not in again.stdout


def test_errors_are_one_line_with_exit_code_2(tmp_path: Path, make_repo: MakeRepo) -> None:
    result = runner.invoke(app, ["index", str(tmp_path), "--json"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert "not inside a git repository" in result.stderr
    assert "Traceback" not in result.output

    repo = make_repo()
    result = runner.invoke(app, ["search", "anything", "--repo", str(repo)])
    assert result.exit_code == 2
    assert "run `vibe index`" in result.stderr
    result = runner.invoke(app, ["map", "--repo", str(repo), "--tokens", "0"])
    assert result.exit_code == 2


def test_search_and_map_never_import_prefect(make_repo: MakeRepo) -> None:
    repo = make_repo()
    runner.invoke(app, ["index", str(repo)])
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "import cli.index\n"
        "from cli._app import app\n"
        f"r = CliRunner().invoke(app, ['search', 'restockShelf', '--repo', {str(repo)!r}, '--json'])\n"
        f"m = CliRunner().invoke(app, ['map', '--repo', {str(repo)!r}])\n"
        "print(r.exit_code, m.exit_code, any(name.split('.')[0] == 'prefect' for name in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["0", "0", "False"]
