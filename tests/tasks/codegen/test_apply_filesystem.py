"""All or nothing where the file system itself would refuse, or fails part-way: real replies, real files."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.codegen.apply import EditWriteError, UnsafeEditError, apply_edits, apply_reply, plan_edits, write_plan
from tasks.codegen.parser import FileEdit

FENCE = "```"
GOOD = (
    f"calc.py\n{FENCE}python\n<<<<<<< SEARCH\n    return a - b\n=======\n    return a + b\n>>>>>>> REPLACE\n{FENCE}\n"
)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / ".git" / "hooks").mkdir(parents=True)
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (root / "pkg" / "util.py").write_text("X = 1\nY = 1\n")
    (root / "run.sh").write_text("echo hi\n")
    (root / "run.sh").chmod(0o755)
    return root


def tree(root: Path) -> dict[str, tuple[str, int, bytes | str]]:
    """Every entry under `root` (directories, files with their bytes and mode, symlinks with their target)."""
    entries: dict[str, tuple[str, int, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            info = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(info.st_mode):
                entries[rel] = ("link", 0, os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                entries[rel] = ("dir", stat.S_IMODE(info.st_mode), b"")
            else:
                entries[rel] = ("file", stat.S_IMODE(info.st_mode), path.read_bytes())
    return entries


def whole(path: str, content: str = "X = 1\n") -> str:
    return f"{path}\n{FENCE}python\n{content}{FENCE}\n"


def applied(root: Path, reply: str) -> dict[str, list[str]]:
    result = apply_reply(root, reply)
    return {"written": list(result.written), "problems": list(result.problems)}


@pytest.mark.parametrize(
    ("second", "message"),
    [
        (whole("calc.py/sub.py"), "calc.py/sub.py: calc.py is a file, so it cannot hold sub.py"),
        (whole("run.sh/deeper/x.py"), "run.sh/deeper/x.py: run.sh is a file, so it cannot hold deeper/x.py"),
        (whole("pkg/" + "n" * 297 + ".py"), "is 300 bytes, over this file system's limit of 255 bytes per name"),
        # 133 characters but 263 bytes: the limit is in bytes.
        (whole("é" * 130 + ".py"), "is 263 bytes, over this file system's limit of 255 bytes per name"),
        (whole("pkg/sub"), "pkg/sub: pkg/sub is a directory, not a file; name a file inside it"),
        (whole("new.py") + whole("new.py/b.py"), "new.py/b.py: this reply also writes new.py as a file"),
        (whole("lib/a/b.py") + whole("lib/a"), "lib/a/b.py: this reply also writes lib/a as a file"),
    ],
)
def test_a_path_the_file_system_would_refuse_goes_back_to_the_model_and_writes_nothing(
    repo: Path, second: str, message: str
) -> None:
    before = tree(repo)
    result = applied(repo, GOOD + second)
    assert result["written"] == []
    assert any(message in problem for problem in result["problems"]), result["problems"]
    assert tree(repo) == before


def test_a_path_over_the_path_limit_goes_back_to_the_model(repo: Path) -> None:
    before = tree(repo)
    deep = "/".join(["d" * 200] * 25) + "/x.py"
    plan = apply_edits(
        repo, [FileEdit(path="calc.py", kind="whole", content="ok\n"), FileEdit(path=deep, kind="whole", content="")]
    )
    (problem,) = plan.problems
    assert problem.kind == "path_too_long"
    assert "the path is too long for this file system" in problem.message
    assert problem.path == deep
    assert tree(repo) == before


def test_git_and_symlinks_on_the_way_stay_refusals(repo: Path) -> None:
    (repo / "alias").symlink_to("pkg", target_is_directory=True)
    before = tree(repo)
    for path, reason in (
        ("alias/x.py", "'alias/x.py': alias is a symbolic link"),
        ("sub/.git", "'sub/.git': files under .git/ (or named .git) are never written"),
        (".GIT/config", "'.GIT/config': files under .git/"),
    ):
        with pytest.raises(UnsafeEditError, match="nothing was written") as info:
            applied(repo, GOOD + whole(path))
        assert reason in str(info.value)
        assert tree(repo) == before


_FSIZE_CHILD = """
import json, resource, signal, sys
from pathlib import Path
from tasks.codegen.apply import apply_edits
from tasks.codegen.parser import parse_reply
root, reply = Path(sys.argv[1]), sys.stdin.read()
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so an oversized write fails with EFBIG instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
plan = apply_edits(root, parse_reply(reply).edits)
print(json.dumps([[p.kind, str(p)] for p in plan.problems]))
"""


def test_a_write_that_fails_part_way_puts_every_file_back(repo: Path) -> None:
    """A real failure: the kernel refuses to grow a file past RLIMIT_FSIZE (EFBIG) while the reply is written."""
    before = tree(repo)
    reply = GOOD + whole("run.sh", "echo new\n") + whole("pkg/deep/new/big.py", "# filler\n" * 5_000)
    child = subprocess.run(
        [sys.executable, "-c", _FSIZE_CHILD, str(repo)],
        input=reply,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        cwd=Path(__file__).resolve().parents[3],
        check=False,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr
    (problem,) = json.loads(child.stdout.splitlines()[-1])
    assert problem[0] == "write_failed"
    assert problem[1].startswith("pkg/deep/new/big.py: writing the file failed (File too large)")
    assert tree(repo) == before


def _chattr(flag: str, path: Path) -> bool:
    chattr = shutil.which("chattr")
    if chattr is None:
        return False
    return subprocess.run([chattr, flag, str(path)], capture_output=True, check=False).returncode == 0


def test_a_replace_that_fails_after_others_were_replaced_restores_them(repo: Path) -> None:
    """A real failure after `calc.py` was already replaced: the last target is immutable (even root cannot)."""
    locked = repo / "pkg" / "util.py"
    if not _chattr("+i", locked):
        pytest.skip("chattr +i is not available here (needs CAP_LINUX_IMMUTABLE and ext4, xfs, btrfs or tmpfs)")
    try:
        before = tree(repo)
        reply = GOOD + whole("brand/new.py") + whole("pkg/util.py", "X = 2\n")
        result = applied(repo, reply)
        assert result["written"] == []
        (problem,) = result["problems"]
        assert problem.startswith("pkg/util.py: writing the file failed (Operation not permitted)")
        assert tree(repo) == before
    finally:
        _chattr("-i", locked)


def test_write_plan_reports_the_failure_as_an_error_for_direct_callers(repo: Path) -> None:
    plan = plan_edits(repo, [FileEdit(path="calc.py", kind="whole", content="ok\n")])
    (repo / "calc.py").unlink()
    (repo / "calc.py").mkdir()  # the tree changed between planning and writing
    with pytest.raises(EditWriteError, match=r"calc\.py is a directory"):
        write_plan(repo, plan)


def test_files_created_by_an_edit_get_ordinary_permissions(repo: Path) -> None:
    applied(repo, whole("pkg/fresh.py"))
    assert stat.S_IMODE((repo / "pkg" / "fresh.py").stat().st_mode) == 0o644
    assert stat.S_IMODE((repo / "run.sh").stat().st_mode) == 0o755


_SEGMENTS = st.sampled_from(
    ["calc.py", "pkg", "util.py", "new", ".git", ".GIT", "link", "n" * 256, "é" * 128, "..", ".", "", "\ud800"]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(_SEGMENTS, min_size=1, max_size=4).map("/".join), min_size=1, max_size=4))
def test_apply_is_total_and_all_or_nothing_for_any_paths(paths: list[str]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        (root / "pkg").mkdir()
        (root / "calc.py").write_text("A = 1\n")
        (root / "pkg" / "util.py").write_text("B = 1\n")
        (root / "link").symlink_to("pkg", target_is_directory=True)
        before = tree(root)
        edits = [FileEdit(path=path, kind="whole", content="C = 1\n") for path in paths]
        try:
            plan = apply_edits(root, edits)
        except UnsafeEditError:
            assert tree(root) == before
            return
        if not plan.ok:
            assert tree(root) == before
        else:
            assert all((root / w.path).read_text() == "C = 1\n" for w in plan.writes)
