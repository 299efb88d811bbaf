"""What a hostile test leaves in a tree to run code through the pipeline's later git commands.

`plant` writes, into a tree, a `.git` that points git at a repository of the attacker's (a `gitdir: .evilgit`
file, or a `.git` directory), whose config names an fsmonitor hook, a clean filter, a textconv and an external
diff, with hooks and a `.gitattributes` that routes every file through them. Each script dumps its environment
into `markers` when it runs, so a test asserts that the directory stays empty (nothing ran) and, if it did not,
shows which canary reached it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

CANARIES = {
    "ANTHROPIC_API_KEY": "sk-ant-canary-0123456789",
    "OPENAI_API_KEY": "sk-openai-canary-0123456789",
    "REDIS_URL": "redis://:canary-password@127.0.0.1:6390/0",
    "PREFECT_API_KEY": "pnu_canary0123456789",
    "GITHUB_TOKEN": "ghp_canaryTOKEN0123456789",
}

_HOOKS = ("pre-commit", "post-commit", "post-checkout", "post-index-change", "reference-transaction", "pre-push")


def _script(path: Path, markers: Path, role: str, *, passthrough: bool) -> None:
    tail = "cat\n" if passthrough else "cat >/dev/null 2>&1 || true\nexit 0\n"
    path.write_text(f"#!/bin/sh\nenv > '{markers}/{role}.'$$'.env'\n{tail}")
    path.chmod(0o755)


def plant(tree: Path, markers: Path, *, variant: str = "gitfile", objects: Path | None = None) -> None:
    """Make `tree` hostile: a `.git` (`variant` "gitfile" or "gitdir") whose config runs marker scripts.

    `.git` is removed first if present; `markers` must exist. `objects` (the victim's object directory, which
    a test can read) makes the attacker's repository a working one: it sees every commit of the victim's.
    """
    evil = tree / (".evilgit" if variant == "gitfile" else ".git")
    dot_git = tree / ".git"
    if dot_git.is_dir() and not dot_git.is_symlink():
        subprocess.run(["rm", "-rf", str(dot_git)], check=True)
    else:
        dot_git.unlink(missing_ok=True)
    subprocess.run(["git", "init", "-q", "--bare", str(evil)], check=True, capture_output=True)
    if objects is not None:
        (evil / "objects" / "info" / "alternates").write_text(f"{objects}\n")
    bin_dir = tree / ".evilbin"
    bin_dir.mkdir(exist_ok=True)
    for role, passthrough in (("fsmonitor", False), ("filter-clean", True), ("filter-smudge", True),
                              ("textconv", True), ("external-diff", False)):
        _script(bin_dir / role, markers, role, passthrough=passthrough)
    hooks = evil / "hooks"
    hooks.mkdir(exist_ok=True)
    for name in _HOOKS:
        _script(hooks / name, markers, f"hook-{name}", passthrough=False)
    (evil / "config").write_text(
        "[core]\n\trepositoryformatversion = 0\n\tbare = false\n"
        f"\tfsmonitor = {bin_dir}/fsmonitor\n\thooksPath = {hooks}\n"
        f"[filter \"evil\"]\n\tclean = {bin_dir}/filter-clean\n\tsmudge = {bin_dir}/filter-smudge\n"
        f"[diff \"evil\"]\n\ttextconv = {bin_dir}/textconv\n"
        f"[diff]\n\texternal = {bin_dir}/external-diff\n"
    )
    if variant == "gitfile":
        dot_git.write_text("gitdir: .evilgit\n")
    (tree / ".gitattributes").write_text("* filter=evil diff=evil\n")


def fired(markers: Path) -> list[str]:
    """The marker files written so far (each one a script that ran)."""
    return sorted(p.name for p in markers.iterdir())


def leaked(markers: Path) -> list[str]:
    """The canaries found in any marker's dumped environment."""
    text = "".join(p.read_text(errors="replace") for p in markers.iterdir())
    return [name for name, value in CANARIES.items() if value in text]


def prove_live(tree: Path, markers: Path) -> list[str]:
    """Show the plant works: plain git run in `tree` (discovering its `.git`) runs the scripts.

    Returns the canaries the scripts saw (the markers are then removed).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    subprocess.run(["git", "add", "-A"], cwd=tree, env=env, capture_output=True, check=False)
    subprocess.run(["git", "status"], cwd=tree, env=env, capture_output=True, check=False)
    ran = fired(markers)
    assert any(name.startswith("filter-clean") for name in ran), ran
    assert any(name.startswith("fsmonitor") for name in ran), ran
    seen = leaked(markers)
    for marker in markers.iterdir():
        marker.unlink()
    return seen
