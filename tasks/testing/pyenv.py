"""A Python project's own test environment: its declared dependencies and pytest, never vibe's packages.

`declared_dependencies` reads what a project says it needs (pyproject `[project] dependencies`, its `test`,
`tests`, `testing` and `dev` extras and dependency groups, `requirements*.txt`, `requirements/*.txt`, setup.cfg's
`install_requires` and test extras, and a setup.py that declares requirements, installed as `.`), as
`pip install` arguments. `link_pytest` gives a virtualenv pytest from vibe's own installation and nothing else
of it: a directory of symlinks to exactly pytest's distribution closure, put on `sys.path` by a `.pth` file after
the virtualenv's own packages (a pytest the project installs wins). A project that declares nothing therefore
gets a virtualenv without pip and without any download: it works offline.
"""

from __future__ import annotations

import configparser
import hashlib
import importlib.metadata
import json
import logging
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tasks.testing.detect import DEPENDENCY_FILES
from vibe.errors import InputError

__all__ = [
    "DeclaredDependencies", "create_venv", "declared_dependencies", "describe_pip_failure", "environment_key",
    "link_pytest", "pip_install_argv", "project_environment_key", "pytest_distributions",
]  # fmt: skip

logger = logging.getLogger(__name__)

_ENV_CACHE_VERSION = "v1"
_PROJECT_ENV_VERSION = "project-env:v1"
# Extras and dependency groups that hold what a project's tests need.
_TEST_EXTRAS = ("test", "tests", "testing", "dev")
_PYTEST_DIR = "vibe-pytest"
# The name the first setup virtualenvs used; rewritten in place, so their cache keys stay valid.
_PYTEST_PTH = "_vibe_pytest_fallback.pth"
_MANIFEST = "manifest.json"
# What pip prints when it could not reach the package index (offline, DNS, proxy, refused connection).
_NETWORK_ERRORS = re.compile(
    r"NewConnectionError|Failed to establish a new connection|Temporary failure in name resolution|"
    r"Name or service not known|Network is unreachable|Connection refused|ProxyError|ConnectTimeoutError|"
    r"Read timed out|No route to host|SSLError"
)


def environment_key(workspace: Path, setup: str, python: str) -> str:
    """The cache key of a setup environment: setup command, interpreter and dependency files' content."""
    digest = hashlib.sha256()
    digest.update(f"{_ENV_CACHE_VERSION}\0{setup}\0{python}\0{sys.version}\0".encode())
    for name in DEPENDENCY_FILES:
        path = workspace / name
        if path.is_file():
            digest.update(f"{name}\0".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    requirements_dir = workspace / "requirements"
    if requirements_dir.is_dir():
        for path in sorted(requirements_dir.glob("*.txt")):
            digest.update(f"requirements/{path.name}\0".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:32]


@dataclass(frozen=True)
class DeclaredDependencies:
    """What a project declares it needs, as `pip install` arguments.

    Attributes:
        requirements: requirement strings (`requests>=2`, `name @ file:///...`) and `-r <file>` pairs, or `.`.
        files: the workspace's files they were read from, relative to it.
    """

    requirements: tuple[str, ...] = ()
    files: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.requirements)


def _strings(value: object) -> list[str]:
    # Option-like entries would become pip options (`--index-url=...`); they are not requirements.
    if not isinstance(value, list):
        return []
    return [item.strip() for item in value if isinstance(item, str) and item.strip() and not item.startswith("-")]


def _group(groups: Mapping[str, object], name: str, seen: set[str]) -> list[str]:
    """A PEP 735 dependency group, its `{include-group = ...}` entries resolved."""
    if name in seen or not isinstance(groups.get(name), list):
        return []
    seen.add(name)
    found: list[str] = []
    for item in groups[name]:  # type: ignore[attr-defined]
        if isinstance(item, dict) and isinstance(item.get("include-group"), str):
            found.extend(_group(groups, item["include-group"], seen))
        else:
            found.extend(_strings([item]))
    return found


def _from_pyproject(path: Path) -> list[str]:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        logger.warning("ignoring the dependencies of %s: %s", path, exc)
        return []
    project = data.get("project")
    if not isinstance(project, dict):
        project = {}
    found = _strings(project.get("dependencies"))
    extras = project.get("optional-dependencies")
    groups = data.get("dependency-groups")
    seen: set[str] = set()
    for name in _TEST_EXTRAS:
        if isinstance(extras, dict):
            found.extend(_strings(extras.get(name)))
        if isinstance(groups, dict):
            found.extend(_group(groups, name, seen))
    return found


def _from_setup_cfg(path: Path) -> list[str]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(path.read_text())
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        logger.warning("ignoring the dependencies of %s: %s", path, exc)
        return []

    def lines(section: str, option: str) -> list[str]:
        raw = parser.get(section, option, fallback="")
        return _strings([line.split("#", 1)[0] for line in raw.splitlines()])

    found = lines("options", "install_requires")
    for name in _TEST_EXTRAS:
        found.extend(lines("options.extras_require", name))
    return found


def _requirement_files(workspace: Path) -> list[str]:
    names = {p.name for pattern in ("requirements*.txt", "*-requirements.txt") for p in workspace.glob(pattern)}
    found = sorted(names)
    if (workspace / "requirements").is_dir():
        found += sorted(f"requirements/{p.name}" for p in (workspace / "requirements").glob("*.txt"))
    return [name for name in found if (workspace / name).is_file() and _has_requirements(workspace / name)]


def _has_requirements(path: Path) -> bool:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return False
    return any(line.split("#", 1)[0].strip() for line in text.splitlines())


def declared_dependencies(workspace: Path) -> DeclaredDependencies:
    """What `workspace` declares its code and tests need, read from its files (nothing is run)."""
    requirements: list[str] = []
    files: list[str] = []
    for name, read in (("pyproject.toml", _from_pyproject), ("setup.cfg", _from_setup_cfg)):
        found = read(workspace / name) if (workspace / name).is_file() else []
        if found:
            requirements += found
            files.append(name)
    for name in _requirement_files(workspace):
        requirements += ["-r", name]
        files.append(name)
    setup_py = workspace / "setup.py"
    declares = re.compile(r"\b(install_requires|extras_require|tests_require)\b")
    if not requirements and setup_py.is_file() and declares.search(_text(setup_py)):
        # Requirements only setup.py knows: pip installs the project (a snapshot; the copy's code still comes
        # first on sys.path, from the working directory).
        requirements, files = ["."], ["setup.py"]
    return DeclaredDependencies(tuple(requirements), tuple(files))


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return ""


def project_environment_key(workspace: Path, dependencies: DeclaredDependencies, python: str) -> str:
    """The cache key of a project's own environment: what it declares, those files' content and the interpreter."""
    digest = hashlib.sha256(json.dumps(dependencies.requirements).encode())
    for name in dependencies.files:
        digest.update(f"{name}\0".encode())
        digest.update(hashlib.sha256((workspace / name).read_bytes()).digest())
    return environment_key(workspace, f"{_PROJECT_ENV_VERSION}\0{digest.hexdigest()}", python)


def pip_install_argv(venv: Path, dependencies: DeclaredDependencies) -> list[str]:
    """The command installing `dependencies` into `venv` (run in the project's directory)."""
    return [
        str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
        "--progress-bar", "off", *dependencies.requirements,
    ]  # fmt: skip


def describe_pip_failure(output: str) -> str:
    """One line on why `pip install` failed: pip's error, and whether the package index was out of reach."""
    errors = [line.strip() for line in output.splitlines() if line.strip().startswith("ERROR:")]
    reason = errors[-1].removeprefix("ERROR:").strip() if errors else "pip failed"
    if _NETWORK_ERRORS.search(output):
        reason += (
            "; the package index could not be reached (offline, or behind a proxy: an index mirror can be set in "
            "/etc/pip.conf)"
        )
    return reason[:300]


def create_venv(python: str, venv: Path, *, with_pip: bool) -> None:
    """A fresh virtualenv at `venv` (no system site-packages); pip only when something is to be installed.

    Raises:
        InputError: the interpreter could not create it.
    """
    argv = [python, "-m", "venv", *([] if with_pip else ["--without-pip"]), str(venv)]
    created = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
    if created.returncode != 0:
        raise InputError(f"could not create a virtualenv with {python}: {created.stderr.strip()}")


def _required_names(dist: importlib.metadata.Distribution) -> Iterator[str]:
    from packaging.requirements import InvalidRequirement, Requirement  # pytest's own dependency

    for line in dist.requires or []:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            yield requirement.name


def pytest_distributions() -> list[importlib.metadata.Distribution]:
    """pytest and every distribution it requires on this interpreter, as installed alongside vibe ([] if none)."""
    found: dict[str, importlib.metadata.Distribution] = {}
    pending = ["pytest"]
    while pending:
        name = re.sub(r"[-_.]+", "-", pending.pop()).lower()
        if name in found:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        found[name] = dist
        pending.extend(_required_names(dist))
    return list(found.values())


def _top_level_entries(dist: importlib.metadata.Distribution) -> dict[str, Path]:
    """Each top-level name a distribution installs (packages, modules, its dist-info) and where it lies."""
    entries: dict[str, Path] = {}
    for file in dist.files or []:
        top = file.parts[0] if file.parts else ""
        if not top or top in ("..", "__pycache__") or top.endswith(".pth"):
            continue
        entries[top] = Path(str(dist.locate_file(top)))
    return entries


def link_pytest(venv: Path) -> bool:
    """Give `venv` vibe's pytest and its dependencies, and nothing else of vibe's installation.

    A directory of symlinks inside the virtualenv (`vibe-pytest/`), listed by a `.pth` file, so it comes after
    the virtualenv's own site-packages; a `bin/pytest` script unless the virtualenv has one. Refreshed when
    vibe's pytest changed. Returns False when vibe has no pytest (the project must install one).
    """
    entries: dict[str, Path] = {}
    for dist in pytest_distributions():
        entries.update(_top_level_entries(dist))
    target = venv / _PYTEST_DIR
    manifest = json.dumps({name: str(path) for name, path in sorted(entries.items())})
    if not (target / _MANIFEST).is_file() or (target / _MANIFEST).read_text() != manifest:
        _replace_links(target, entries, manifest)
    for site_packages in venv.glob("lib/python*/site-packages"):
        pth = site_packages / _PYTEST_PTH
        if not pth.is_file() or pth.read_text() != f"{target}\n":
            pth.write_text(f"{target}\n")
    script = venv / "bin" / "pytest"
    if entries and not script.exists():
        script.write_text(
            f"#!{venv / 'bin' / 'python'}\nimport sys\nfrom pytest import console_main\nsys.exit(console_main())\n"
        )
        script.chmod(0o755)
    return bool(entries)


def _replace_links(target: Path, entries: Mapping[str, Path], manifest: str) -> None:
    if target.is_dir():
        for old in target.iterdir():
            old.unlink()
    target.mkdir(parents=True, exist_ok=True)
    for name, path in entries.items():
        if path.exists():
            (target / name).symlink_to(path)
    (target / _MANIFEST).write_text(manifest)
