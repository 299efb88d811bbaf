"""A Python project's tests run in its own cached environment: what it declares and pytest, never vibe's packages."""

from __future__ import annotations

import base64
import hashlib
import socket
import sys
import zipfile
from pathlib import Path

import pytest

from tasks.testing import run_test_suite
from tasks.testing.pyenv import (
    DeclaredDependencies,
    declared_dependencies,
    describe_pip_failure,
    environment_key,
    project_environment_key,
    pytest_distributions,
)
from tests.tasks.testing.conftest import MakeRepo

ISOLATED_SUITE = {
    "pyproject.toml": """
        [project]
        name = "plain"
        version = "0"
    """,
    "tests/test_isolated.py": """
        import importlib.util
        import sys

        import pytest


        @pytest.mark.parametrize("name", ["prefect", "anthropic", "pydantic", "tasks"])
        def test_vibes_packages_are_not_importable(name):
            assert importlib.util.find_spec(name) is None


        def test_pytest_runs_from_the_projects_own_virtualenv():
            assert sys.prefix != sys.base_prefix
            assert "vibe-pytest" in pytest.__file__
    """,
}


def _venvs(cache: Path) -> list[Path]:
    return [p for p in cache.iterdir() if p.is_dir()]


def test_a_project_without_dependencies_gets_a_virtualenv_of_its_own_without_pip(
    make_repo: MakeRepo, tmp_path: Path
) -> None:
    cache = tmp_path / "envs"
    repo = make_repo(ISOLATED_SUITE)
    report = run_test_suite(repo, timeout_s=120, env_cache_dir=cache, rerun_failures=False)
    assert report.ok, report.failure_digest()
    assert report.passed == 5
    (venv,) = _venvs(cache)
    # No pip in it: nothing was downloaded or installed, so this works offline.
    assert list(venv.glob("lib/python*/site-packages/pip")) == []
    assert not list(venv.glob("lib/python*/site-packages/*.dist-info"))


def _wheel(directory: Path, name: str, version: str, files: dict[str, str]) -> Path:
    """A minimal pure-Python wheel, made by hand: pip installs it without a build backend or the network."""
    dist_info = f"{name}-{version}.dist-info"
    contents = {
        **files,
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: vibe-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in contents.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{dist_info}/RECORD,,")
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in contents.items():
            archive.writestr(path, text)
        archive.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    return wheel


def _project_with_a_local_dependency(make_repo: MakeRepo) -> Path:
    repo = make_repo(
        {
            "pyproject.toml": """
                [project]
                name = "uses-localdep"
                version = "0"
                dependencies = ["localdep>=1"]
            """,
            # The package index is a directory of the project: pip needs no network at all.
            "requirements.txt": "--no-index\n--find-links ./wheels\n",
            "test_uses.py": """
                import localdep


                def test_the_declared_dependency_is_installed():
                    assert localdep.ANSWER == 42
            """,
        }
    )
    (repo / "wheels").mkdir()
    _wheel(repo / "wheels", "localdep", "1.0", {"localdep/__init__.py": "ANSWER = 42\n"})
    return repo


@pytest.mark.slow
def test_declared_dependencies_are_installed_once_and_reused(make_repo: MakeRepo, tmp_path: Path) -> None:
    cache = tmp_path / "envs"
    repo = _project_with_a_local_dependency(make_repo)
    first = run_test_suite(repo, timeout_s=300, env_cache_dir=cache, rerun_failures=False)
    assert first.ok, first.failure_digest()
    assert first.passed == 1
    (venv,) = _venvs(cache)
    assert list(venv.glob("lib/python*/site-packages/localdep-1.0.dist-info"))
    built = (venv / ".vibe-ready").stat().st_mtime_ns
    second = run_test_suite(repo, timeout_s=300, env_cache_dir=cache, rerun_failures=False)
    assert second.ok, second.failure_digest()
    # Reused, not rebuilt: the same one environment, its ready marker untouched.
    assert _venvs(cache) == [venv]
    assert (venv / ".vibe-ready").stat().st_mtime_ns == built


@pytest.fixture
def refused_port() -> int:
    """A loopback port nothing listens on: connections to it are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_an_unreachable_package_index_is_a_clear_setup_failure(
    make_repo: MakeRepo, tmp_path: Path, refused_port: int
) -> None:
    repo = make_repo(
        {
            "pyproject.toml": """
                [project]
                name = "needs-the-index"
                version = "0"
                dependencies = ["vibe-test-unreachable-package"]
            """,
            "requirements.txt": f"--index-url http://127.0.0.1:{refused_port}/simple\n",
            "test_x.py": "def test_x():\n    pass\n",
        }
    )
    report = run_test_suite(repo, timeout_s=300, env_cache_dir=tmp_path / "envs", rerun_failures=False)
    assert not report.ok
    assert report.runner == "setup"
    assert report.summary.startswith("setup failed: could not install the dependencies declared in pyproject.toml")
    assert "vibe-test-unreachable-package" in report.summary
    assert "the package index could not be reached" in report.summary
    assert "Traceback" not in report.summary
    assert report.command[:2] == ["pip", "install"]
    # Nothing half-built is left to be reused.
    assert [p for p in (tmp_path / "envs").iterdir() if p.is_dir()] == []


def test_declared_dependencies_come_from_the_projects_files(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        """
[project]
name = "x"
dependencies = ["requests>=2", "--index-url=http://evil.invalid"]
[project.optional-dependencies]
test = ["hypothesis"]
docs = ["sphinx"]
[dependency-groups]
dev = ["ruff", {include-group = "lint"}]
lint = ["mypy"]
"""
    )
    (tmp_path / "requirements").mkdir()
    (tmp_path / "requirements" / "test.txt").write_text("pytest-xdist\n")
    (tmp_path / "requirements-dev.txt").write_text("# only a comment\n")
    found = declared_dependencies(tmp_path)
    assert found.requirements == ("requests>=2", "hypothesis", "ruff", "mypy", "-r", "requirements/test.txt")
    assert found.files == ("pyproject.toml", "requirements/test.txt")


def test_setup_cfg_and_setup_py_declarations(tmp_path: Path) -> None:
    (tmp_path / "setup.cfg").write_text(
        "[options]\ninstall_requires =\n    attrs  # pinned later\n    six\n"
        "[options.extras_require]\ntests = pytest-mock\n"
    )
    assert declared_dependencies(tmp_path).requirements == ("attrs", "six", "pytest-mock")
    (tmp_path / "setup.cfg").unlink()
    (tmp_path / "setup.py").write_text("from setuptools import setup\nsetup(install_requires=['attrs'])\n")
    assert declared_dependencies(tmp_path) == DeclaredDependencies((".",), ("setup.py",))
    (tmp_path / "setup.py").write_text("from setuptools import setup\nsetup(name='bare')\n")
    assert not declared_dependencies(tmp_path)


def test_environment_keys(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("attrs\n")
    # The setup environments' key is the recipe it always was, so existing caches stay valid.
    digest = hashlib.sha256(f"v1\0pip install -r requirements.txt\0/py\0{sys.version}\0".encode())
    digest.update(b"requirements.txt\0" + hashlib.sha256(b"attrs\n").digest())
    assert environment_key(tmp_path, "pip install -r requirements.txt", "/py") == digest.hexdigest()[:32]
    first = project_environment_key(tmp_path, declared_dependencies(tmp_path), "/py")
    assert first != environment_key(tmp_path, "pip install -r requirements.txt", "/py")
    (tmp_path / "requirements.txt").write_text("attrs>=23\n")
    assert project_environment_key(tmp_path, declared_dependencies(tmp_path), "/py") != first


def test_vibes_pytest_comes_alone() -> None:
    names = {dist.metadata["Name"].lower() for dist in pytest_distributions()}
    assert {"pytest", "pluggy", "iniconfig", "packaging"} <= names
    assert names.isdisjoint({"prefect", "anthropic", "pydantic", "httpx"})


def test_pip_failures_in_one_line() -> None:
    output = (
        "WARNING: Retrying (Retry(total=0)) after connection broken by 'NewConnectionError(...: "
        "Failed to establish a new connection: [Errno 111] Connection refused')'\n"
        "ERROR: Could not find a version that satisfies the requirement foo (from versions: none)\n"
        "ERROR: No matching distribution found for foo\n"
    )
    assert describe_pip_failure(output) == (
        "No matching distribution found for foo; the package index could not be reached (offline, or behind a "
        "proxy: an index mirror can be set in /etc/pip.conf)"
    )
    assert describe_pip_failure("ERROR: boom\n") == "boom"
