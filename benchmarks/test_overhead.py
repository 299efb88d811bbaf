"""Overhead of the sandboxed test runner on a real project's suite, printed as JSON.

Downloads a pure-Python sdist that ships its tests (default: more-itertools 10.8.0, as issue 11 asks),
commits it into a scratch git repository, then runs its suite alternately

- directly: `python -m pytest -p no:cacheprovider -q` in the checkout, with the interpreter of a plain
  virtualenv that holds only pytest (the same pytest the runner links into the project's environment:
  `tasks.testing.pyenv.link_pytest`), so neither side sees vibe's packages or pytest plugins, and
- through the runner: `run_test_suite` on a workspace (`open_workspace`): the disposable copy of the tree,
  the project's own cached environment (built once, before the timed runs), bubblewrap with its mount plan,
  limits, JUnit XML and clean-up,

and reports the median wall time of each and their ratio (target: <= 1.15; the copy is included, the
worktree checkout is timed apart as `workspace_s`, what `open_workspace` took), the median ratio of adjacent
pairs, the copy's own time, and CPU times (user + system of every process of the run, the runner's own work
included): on a machine busy with other work the CPU ratio is the steadier figure.

Usage: `uv run python benchmarks/test_overhead.py [--package more-itertools==10.8.0] [--repeat 5] [--cache DIR]`
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tasks.testing import run_test_suite
from tasks.testing.pyenv import create_venv, link_pytest
from tasks.workspace import open_workspace

TARGET_RATIO = 1.15


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def download_sdist(package: str, cache: Path) -> Path:
    """The sdist of `package` (`name==version`), downloaded once into `cache` with pip."""
    cache.mkdir(parents=True, exist_ok=True)
    # sdists are named with the normalised project name: more-itertools -> more_itertools-10.8.0.tar.gz
    name = re.sub(r"[-_.]+", "_", package.split("==")[0]).lower()
    version = re.sub(r"[-_.]+", "_", package.split("==")[1]) if "==" in package else ""

    def cached() -> list[Path]:
        return sorted(
            p for p in cache.glob("*.tar.gz")
            if re.sub(r"[-_.]+", "_", p.name).lower().startswith(f"{name}_{version}".rstrip("_"))
        )  # fmt: skip

    found = cached()
    if found:
        return found[-1]
    for pip in ([sys.executable, "-m", "pip"], ["python3", "-m", "pip"]):
        proc = subprocess.run(
            [*pip, "download", "--no-binary", ":all:", "--no-deps", "-q", "-d", str(cache), package],
            capture_output=True,
            text=True,
        )
        if proc.returncode == 0:
            break
    else:
        raise SystemExit(f"could not download {package} with pip: {proc.stderr.strip()}")
    found = cached()
    if not found:
        raise SystemExit(f"pip downloaded no sdist for {package}")
    return found[-1]


def make_repo(sdist: Path, root: Path) -> Path:
    with tarfile.open(sdist) as archive:
        archive.extractall(root, filter="data")
    (repo,) = [p for p in root.iterdir() if p.is_dir()]
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"}  # fmt: skip
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "sdist"]):
        subprocess.run(["git", *args], cwd=repo, check=True, env=env)
    return repo


def plain_venv(root: Path) -> Path:
    """A virtualenv with nothing but pytest (vibe's, linked the way the runner links it): the fair baseline."""
    venv = root / "baseline-venv"
    create_venv(sys.executable, venv, with_pip=False)
    link_pytest(venv)
    return venv / "bin" / "python"


def run_direct(repo: Path, python: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    cpu0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run(
        [str(python), "-m", "pytest", "-p", "no:cacheprovider", "-q"],
        cwd=repo,
        capture_output=True,
        text=True,
        env=env,
        # The runner starts its own session; so does this run, or the kernel's autogroup scheduling would give
        # the two different shares of a busy machine's CPU.
        start_new_session=True,
    )
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    return {"mode": "direct", "wall_s": wall, "cpu_s": cpu, "exit_code": proc.returncode, "summary": summary}


# Runs pytest and prints its CPU time: processes inside bubblewrap's pid namespace are not accounted to this
# process's children, so the sandboxed run measures its own.
_CPU_PROBE = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(f'VIBE_BENCH_CPU {usage.ru_utime + usage.ru_stime}', file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def _copy_time(tree: Path) -> float:
    # The kind of copy run_test_suite makes (files and symlinks, no `.git`), timed on its own for the figures.
    target = Path(tempfile.mkdtemp(prefix="vibe-bench-copy-"))
    try:
        t0 = time.perf_counter()
        shutil.copytree(tree, target / "work", symlinks=True, ignore=shutil.ignore_patterns(".git"))
        return time.perf_counter() - t0
    finally:
        shutil.rmtree(target, ignore_errors=True)


def run_sandboxed(repo: Path, env_cache: Path) -> dict[str, Any]:
    opened = time.perf_counter()
    with open_workspace(repo) as workspace:
        workspace_s = time.perf_counter() - opened
        own0, children0, t0 = time.process_time(), _children_cpu(), time.perf_counter()
        # `python` is the project environment's interpreter: the runner puts its bin first on PATH.
        report = run_test_suite(
            workspace.path, command=["python", "-c", _CPU_PROBE, "python", "-m", "pytest"], timeout_s=3600,
            env_cache_dir=env_cache,
        )  # fmt: skip
        wall = time.perf_counter() - t0
        outside = time.process_time() - own0 + _children_cpu() - children0
        copy_s = _copy_time(workspace.path)
    match = re.search(r"VIBE_BENCH_CPU ([\d.]+)", report.output)
    inside = float(match.group(1)) if match else float("nan")
    return {
        "mode": "sandboxed", "wall_s": wall, "cpu_s": inside + outside, "cpu_outside_s": outside, "copy_s": copy_s,
        "workspace_s": workspace_s,
        "exit_code": report.exit_code, "summary": report.counts_line(), "isolation": report.isolation,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", default="more-itertools==10.8.0")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "vibe-bench-sdists")
    args = parser.parse_args()

    sdist = download_sdist(args.package, args.cache)
    root = Path(tempfile.mkdtemp(prefix="vibe-bench-"))
    try:
        repo = make_repo(sdist, root)
        files = sum(1 for p in repo.rglob("*") if ".git" not in p.relative_to(repo).parts)
        runs: list[dict[str, Any]] = []
        baseline = plain_venv(root)
        env_cache = root / "envs"
        # Warm the page cache and the interpreter's imports once so the first timed run is not penalised; the
        # sandboxed warm-up also builds the project's cached environment, as a user's first run would.
        run_direct(repo, baseline)
        run_sandboxed(repo, env_cache)
        for _ in range(args.repeat):
            runs.append(run_direct(repo, baseline))
            runs.append(run_sandboxed(repo, env_cache))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    def median(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in runs if r["mode"] == mode)

    direct_wall, sandboxed_wall = median("direct", "wall_s"), median("sandboxed", "wall_s")
    direct_cpu, sandboxed_cpu = median("direct", "cpu_s"), median("sandboxed", "cpu_s")
    direct_runs = [r for r in runs if r["mode"] == "direct"]
    sandboxed_runs = [r for r in runs if r["mode"] == "sandboxed"]
    # Each sandboxed run is paired with the direct run just before it: both saw about the same machine load.
    paired = statistics.median(s["wall_s"] / d["wall_s"] for d, s in zip(direct_runs, sandboxed_runs, strict=True))
    ratio = sandboxed_wall / direct_wall
    print(
        json.dumps(
            {
                "benchmark": "test_overhead",
                "project": sdist.name,
                "repeat": args.repeat,
                "direct_baseline": "a plain virtualenv with only pytest (the runner's linked closure)",
                "direct_wall_s": round(direct_wall, 2),
                "sandboxed_wall_s": round(sandboxed_wall, 2),
                "ratio": round(ratio, 3),
                "paired_ratio_median": round(paired, 3),
                "direct_cpu_s": round(direct_cpu, 2),
                "sandboxed_cpu_s": round(sandboxed_cpu, 2),
                "cpu_ratio": round(sandboxed_cpu / direct_cpu, 3),
                "copy_s_median": round(median("sandboxed", "copy_s"), 3),
                "workspace_s_median": round(median("sandboxed", "workspace_s"), 3),
                "files_in_tree": files,
                "target_ratio": TARGET_RATIO,
                "meets_target": ratio <= TARGET_RATIO,
                "load_average_1m": round(os.getloadavg()[0], 2),
                "isolation": next(r["isolation"] for r in runs if r["mode"] == "sandboxed"),
                "runs": [
                    {k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items() if k != "isolation"}
                    for r in runs
                ],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
