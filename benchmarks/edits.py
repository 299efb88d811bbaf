"""Edit-format benchmark (issue 13): do the replies real models write change exactly what they mean?

Each case of `benchmarks/edits_cases.json` breaks one line of a real package (boltons, funcy and
sortedcontainers sdists) so that real tests fail; the fix is the original line. Every case is answered in every
reply style below, each written the way a model writes it, and goes through the pipeline's own functions: the
reply is applied (`tasks.codegen.apply.apply_reply` with the pipeline's `PathRules`), the tests run
(`tasks.testing.run_test_suite`) and are compared with the base's (`tasks.pipeline.evidence.compare`). An
attempt that is not green gets one repair reply (a plain SEARCH/REPLACE fix; the deleted-test style repeats
itself), as the pipeline's repair round would.

Per style it prints: `applied_attempt_1` (attempt 1 wrote the fix), `green` (tests pass and no test that
passed before is gone, at the end), `corrupt` (a file ends neither as it was nor as the fix means: a snippet
in place of a file, a diff as content, a stray copy), `silent` (corrupt and green), `llm_calls`. Targets: 0
corrupt, 0 silent, every unambiguous style applied on attempt 1 (`expect_attempt_1`), `deleted_test` never
green.

Measured (2026-12, 15 cases x 14 styles): 0 corrupt, 0 silent, `deleted_test` never green, every style applied on
attempt 1 except one `sr_elision` case that is really ambiguous (`def count` twice in sortedlist.py: sent back).
The parser and apply step before issue 13, on the same matrix: 75 corrupt (15 silent: the repo-prefixed path's
stray copy), `deleted_test` green 11 of 15, six styles never applied on attempt 1.

Usage: `uv run python benchmarks/edits.py --sdists DIR [--cases N] [--styles a,b]` where DIR holds
`pip download --no-deps --no-binary :all: boltons funcy sortedcontainers` and DIR/deps the test dependency
`pip download --no-deps --no-binary :all: whatever` (funcy's tests import it; it is copied into the tree).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import shutil
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.codegen.apply import UnsafeEditError, apply_reply
from tasks.codegen.paths import PathRules
from tasks.codegen.wholefile import wants_shrink
from tasks.pipeline.evidence import compare, request_allows_test_changes
from tasks.testing.report import TestReport
from tasks.testing.runner import run_test_suite

_CASES = Path(__file__).with_name("edits_cases.json")
F = "```"


@dataclass(frozen=True)
class Case:
    """One broken line of a real package, its tests, and the views of it the reply styles need."""

    name: str
    repo: Path  # the "user's repository": the sdist with the line broken
    path: str
    broken: str
    fixed: str
    line: int  # 0-based index of the broken line
    func_start: int  # 0-based first line of the enclosing function
    func_end: int
    tests: str
    request: str
    failing_test: str  # the source of one failing top-level test function

    @property
    def lines(self) -> list[str]:
        return self.broken.splitlines()

    def context(self, fixed: bool, before: int = 2) -> list[str]:
        start = max(self.func_start + 1, self.line - before)
        lines = self.fixed.splitlines() if fixed else self.lines
        return lines[start : self.line + 1]


def _join(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


def _sr(search: list[str], replace: list[str]) -> str:
    return f"<<<<<<< SEARCH\n{_join(search)}=======\n{_join(replace)}>>>>>>> REPLACE\n"


def claude_sr(case: Case) -> str:
    return (
        f"I found the bug: the line in the function at {case.path} is off.\n\n{case.path}\n{F}python\n"
        f"{_sr(case.context(False), case.context(True))}{F}\n\nThis restores the intended behaviour."
    )


def _body(text: str) -> str:
    # The closing fence stands on a line of its own, also after a file without a final newline.
    return text if text.endswith("\n") else text + "\n"


def gpt_whole(case: Case) -> str:
    return f"Here is the corrected file:\n\n**{case.path}**\n{F}python\n{_body(case.fixed)}{F}\n\nLet me know if..."


def gemini_info(case: Case) -> str:
    return (
        f"Okay, I'll fix it.\n\n{F}python title=\"{case.path}\"\n{_sr(case.context(False), case.context(True))}"
        f"{F}\n\n**Explanation:** the off line is corrected."
    )


def _hunk(case: Case, start: int) -> str:
    ctx = case.context(False)
    first = case.line - len(ctx) + 1
    after = case.lines[case.line + 1 : case.line + 3]
    body = "".join(f" {line}\n" for line in ctx[:-1]) + f"-{ctx[-1]}\n+{case.context(True)[-1]}\n"
    body += "".join(f" {line}\n" for line in after)
    count = len(ctx) + len(after)
    return f"@@ -{start or first + 1},{count} +{start or first + 1},{count} @@\n{body}"


def udiff_right(case: Case) -> str:
    return f"{F}diff\n--- a/{case.path}\n+++ b/{case.path}\n{_hunk(case, 0)}{F}\n"


def udiff_wrong(case: Case) -> str:
    return f"{F}diff\n--- {case.path}\n+++ {case.path}\n{_hunk(case, case.line + 58)}{F}\n"


def path_then_diff(case: Case) -> str:
    return f"The fix:\n\n{case.path}\n{F}diff\n{_hunk(case, 0)}{F}\n"


def sr_less_indent(case: Case) -> str:
    search = textwrap.dedent(_join(case.context(False))).splitlines()
    replace = textwrap.dedent(_join(case.context(True))).splitlines()
    return f"{case.path}\n{F}python\n{_sr(search, replace)}{F}\n"


def sr_elision(case: Case) -> str:
    head = case.lines[case.func_start]
    search, replace = [head, "...", case.lines[case.line]], [head, "...", case.fixed.splitlines()[case.line]]
    return f"Only the marked line changes:\n\n{case.path}\n{F}python\n{_sr(search, replace)}{F}\n"


def elided_whole(case: Case) -> str:
    func = case.fixed.splitlines()[case.func_start : case.func_end + 1]
    body = "# ... existing code ...\n\n" + _join(func) + "\n# ... rest of the file unchanged ...\n"
    return f"{case.path}\n{F}python\n{body}{F}\n"


def quoted_reference(case: Case) -> str:
    return (
        claude_sr(case) + f"\n\nFor reference, the failing test in\n`{case.tests}`:\n{F}python\n"
        f"{case.failing_test}{F}\n"
    )


def quoted_current(case: Case) -> str:
    func = _join(case.lines[case.func_start : case.func_end + 1])
    return f"The current implementation is:\n\n{case.path}\n{F}python\n{func}{F}\n\nThe fix:\n\n" + claude_sr(case)


def repo_prefixed(case: Case) -> str:
    return f"{case.repo.name}/{case.path}\n{F}python\n{_body(case.fixed)}{F}\n"


def absolute_inside(case: Case) -> str:
    return f"{case.repo}/{case.path}\n{F}python\n{_sr(case.context(False), case.context(True))}{F}\n"


def deleted_test(case: Case) -> str:
    return (
        f"The test expects the wrong thing, so I removed it.\n\n{case.tests}\n{F}python\n"
        f"{_sr(case.failing_test.splitlines(), [])}{F}\n"
    )


# name -> (the reply, whether attempt 1 should apply it)
STYLES: dict[str, tuple[Callable[[Case], str], bool]] = {
    "claude_sr": (claude_sr, True),
    "gpt_whole": (gpt_whole, True),
    "gemini_info_path": (gemini_info, True),
    "udiff_right_lines": (udiff_right, True),
    "udiff_wrong_lines": (udiff_wrong, True),
    "path_then_diff_fence": (path_then_diff, True),
    "sr_less_indent": (sr_less_indent, True),
    "sr_elision": (sr_elision, True),
    "elided_whole_file": (elided_whole, False),
    "quoted_test_for_reference": (quoted_reference, True),
    "quoted_current_function": (quoted_current, True),
    "repo_prefixed_path": (repo_prefixed, True),
    "absolute_path_inside": (absolute_inside, True),
    "deleted_test": (deleted_test, True),  # applied as meant; the evidence must keep it from passing
}


def _enclosing(tree: ast.Module, line: int) -> tuple[int, int]:
    best = (0, 0)
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or node.end_lineno is None:
            continue
        if node.lineno - 1 <= line <= node.end_lineno - 1 and node.lineno - 1 >= best[0]:
            best = (node.lineno - 1, node.end_lineno - 1)
    return best


def _failing_test_source(tree_dir: Path, tests: str, report: TestReport) -> str:
    source = (tree_dir / tests).read_text()
    failing = {t.id.rsplit("::", 1)[-1].split("[")[0] for t in report.tests if t.outcome in ("failed", "error")}
    lines = source.splitlines()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name in failing and node.end_lineno is not None:
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
            return _join(lines[start : node.end_lineno])
    raise SystemExit(f"{tests}: no failing top-level test function to quote or delete")


class Runner:
    """The tests of a tree, run once per distinct content of the files the replies may touch."""

    def __init__(self) -> None:
        self.cache: dict[str, TestReport] = {}
        self.runs = 0

    def __call__(self, tree: Path, tests: str, files: list[str]) -> TestReport:
        digest = hashlib.sha256()
        for rel in sorted(files):
            target = tree / rel
            digest.update(rel.encode() + b"\0" + (target.read_bytes() if target.is_file() else b"-") + b"\0")
        key = f"{tests}:{digest.hexdigest()}"
        if key not in self.cache:
            self.runs += 1
            self.cache[key] = run_test_suite(
                tree, command=f"python -m pytest -q -p no:cacheprovider {tests}", trusted_code=True,
                rerun_failures=False, use_bwrap=False, timeout_s=300,
            )  # fmt: skip
        return self.cache[key]


def _prepare(spec: dict[str, Any], sdists: Path, work: Path, index: int, run_tests: Runner) -> Case:
    sdist = next(sdists.glob(f"{spec['package']}-*.tar.gz"))
    repo = work / f"case{index:02d}" / spec["package"]
    repo.mkdir(parents=True)
    subprocess.run(["tar", "-xzf", str(sdist), "-C", str(repo), "--strip-components=1"], check=True)
    for dep in spec.get("test_deps", []):  # pure-Python test dependencies, importable from the tree's root
        extracted = work / "deps" / dep
        if not extracted.is_dir():
            extracted.mkdir(parents=True)
            dep_sdist = next((sdists / "deps").glob(f"{dep}-*.tar.gz"))
            subprocess.run(["tar", "-xzf", str(dep_sdist), "-C", str(extracted), "--strip-components=1"], check=True)
        shutil.copy(extracted / f"{dep}.py", repo / f"{dep}.py")
    if "own_tests" in spec:
        (repo / spec["tests"]).parent.mkdir(exist_ok=True)
        (repo / spec["tests"]).write_text(spec["own_tests"])
    target = repo / spec["path"]
    fixed = target.read_text()
    if fixed.count(spec["good"] + "\n") != 1:
        raise SystemExit(f"{spec['path']}: {spec['good']!r} is not one line of the file")
    broken = fixed.replace(spec["good"] + "\n", spec["bad"] + "\n")
    target.write_text(broken)
    line = broken.splitlines().index(spec["bad"])
    start, end = _enclosing(ast.parse(broken), line)
    base = run_tests(repo, spec["tests"], [spec["path"], spec["tests"]])
    if base.ok:
        raise SystemExit(f"case {index} ({spec['path']}): the broken line fails no test")
    return Case(
        name=f"{spec['package']}:{spec['path']}:{line + 1}", repo=repo, path=spec["path"], broken=broken,
        fixed=fixed, line=line, func_start=start, func_end=end, tests=spec["tests"], request=spec["request"],
        failing_test=_failing_test_source(repo, spec["tests"], base),
    )  # fmt: skip


def _snapshot(tree: Path) -> dict[str, bytes]:
    return {str(p.relative_to(tree)): p.read_bytes() for p in tree.rglob("*") if p.is_file() and "cache" not in p.name}


def _attempt(case: Case, tree: Path, reply: str) -> tuple[bool, list[str]]:
    rules = PathRules(repo_name=case.repo.name, aliases=(case.repo,), outside="problem")
    try:
        applied = apply_reply(tree, reply, rules=rules, allow_shrink=wants_shrink(case.request))
    except UnsafeEditError as exc:
        return False, [f"refused: {exc}"]
    return bool(applied.written) and not applied.problems, list(applied.problems)


def run_style(case: Case, style: str, work: Path, run_tests: Runner, base: TestReport) -> dict[str, Any]:
    """One case answered in one style: up to two attempts, then the outcome."""
    make, _ = STYLES[style]
    tree = work / "trees" / f"{case.repo.parent.name}-{style}" / case.repo.name
    shutil.copytree(case.repo, tree)
    before = _snapshot(tree)
    calls, applied_first, green = 0, False, False
    first_problems: list[str] = []
    for attempt in (1, 2):
        reply = make(case) if attempt == 1 or style == "deleted_test" else claude_sr(case)
        calls += 1
        applied, problems = _attempt(case, tree, reply)
        if attempt == 1:
            applied_first, first_problems = applied, [p[:300] for p in problems]
        if not applied:
            continue
        report = run_tests(tree, case.tests, [case.path, case.tests])
        evidence = compare(base, report, allow_changes=request_allows_test_changes(case.request))
        if report.ok and evidence.ok:
            green = True
            break
    after = _snapshot(tree)
    meant = {**before, case.path: case.fixed.encode()}
    if style == "deleted_test":
        meant[case.tests] = after.get(case.tests, b"")  # the reply means to delete: not the pipeline's damage
    fixed_ok = (case.fixed.encode(), _body(case.fixed).encode())  # a whole file may add the final newline
    corrupt = sorted(
        p for p in set(before) | set(after)
        if after.get(p) not in (before.get(p), meant.get(p)) and not (p == case.path and after.get(p) in fixed_ok)
    )  # fmt: skip
    shutil.rmtree(tree.parent)
    return {"applied_first": applied_first, "green": green, "corrupt": corrupt, "calls": calls,
            "problems": first_problems[:2]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdists", type=Path, required=True, help="directory holding the three sdists")
    parser.add_argument("--cases", type=int, default=0, help="only the first N cases")
    parser.add_argument("--styles", default="", help="comma-separated style names (default: all)")
    args = parser.parse_args()
    specs = json.loads(_CASES.read_text())["cases"]
    specs = specs[: args.cases] if args.cases else specs
    styles = [s for s in args.styles.split(",") if s] or list(STYLES)
    run_tests = Runner()
    started = time.monotonic()
    matrix: dict[str, dict[str, Any]] = {
        s: {"applied_attempt_1": 0, "green": 0, "corrupt": 0, "silent": 0, "llm_calls": 0,
            "expect_attempt_1": STYLES[s][1], "misses": []}
        for s in styles
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="vibe-bench-edits-") as tmp:
        work = Path(tmp)
        for index, spec in enumerate(specs):
            case = _prepare(spec, args.sdists, work, index, run_tests)
            base = run_tests(case.repo, case.tests, [case.path, case.tests])
            for style in styles:
                result = run_style(case, style, work, run_tests, base)
                row = matrix[style]
                row["applied_attempt_1"] += result["applied_first"]
                row["green"] += result["green"]
                row["corrupt"] += bool(result["corrupt"])
                row["silent"] += bool(result["corrupt"]) and result["green"]
                row["llm_calls"] += result["calls"]
                if result["applied_first"] != STYLES[style][1] or result["corrupt"]:
                    row["misses"].append({"case": case.name, **{k: result[k] for k in ("corrupt", "problems")}})
    total = {k: sum(int(row[k]) for row in matrix.values()) for k in ("corrupt", "silent")}
    unmet = [s for s, row in matrix.items() if row["expect_attempt_1"] and row["applied_attempt_1"] < len(specs)]
    print(json.dumps({
        "benchmark": "edits", "cases": len(specs), "styles": len(styles), "test_runs": run_tests.runs,
        "seconds": round(time.monotonic() - started, 1), "corrupt": total["corrupt"], "silent": total["silent"],
        "deleted_test_green": matrix.get("deleted_test", {}).get("green", 0),
        "styles_not_applied_on_attempt_1": unmet, "matrix": matrix,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
