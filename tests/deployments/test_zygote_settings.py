"""The zygote gives each forked run the Prefect settings of its job's environment (built before the fork, once
per distinct set of `PREFECT_*` variables), and leaves its own environment as it was."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from deployments._zygote import _Job, _Zygote, load_prefect_settings

if TYPE_CHECKING:
    from prefect.settings import Settings


@pytest.fixture
def zygote() -> Iterator[_Zygote]:
    yield _Zygote(requests=-1, replies=-1, worker_pid=os.getpid())
    load_prefect_settings()  # this process's own settings and logging again


def _job(tmp_path: Path, **env: str) -> _Job:
    return _Job(env={"HOME": os.environ.get("HOME", "/"), **env}, cwd=str(tmp_path), quiet=True)


def _global_settings() -> Settings:
    # What a forked child starts with: the global settings context (this test process may have entered a test
    # harness's settings context on top of it, which `get_current_settings` would answer with).
    import prefect.context

    return prefect.context.GLOBAL_SETTINGS_CONTEXT.settings


def test_a_job_runs_on_the_settings_of_its_own_environment(zygote: _Zygote, tmp_path: Path) -> None:
    before = dict(os.environ)
    zygote._prepare_settings(_job(tmp_path, PREFECT_API_URL="http://10.9.8.7:4200/api", PREFECT__FLOW_RUN_ID="a"))
    assert _global_settings().api.url == "http://10.9.8.7:4200/api"
    assert dict(os.environ) == before  # the zygote's own environment is untouched

    # A run's own variables are not settings, and each run's new empty directory reads the same: the next run
    # with the same PREFECT_* pays nothing more.
    prepared = zygote._settings_for
    (other := tmp_path.parent / f"{tmp_path.name}-next").mkdir()
    zygote._prepare_settings(_job(other, PREFECT_API_URL="http://10.9.8.7:4200/api", PREFECT__FLOW_RUN_ID="b"))
    assert zygote._settings_for is prepared

    # A settings file in the run's directory counts.
    (other / "prefect.toml").write_text('[logging]\nlevel = "CRITICAL"\n')
    zygote._prepare_settings(_job(other, PREFECT_API_URL="http://10.9.8.7:4200/api"))
    assert _global_settings().logging.level == "CRITICAL"
    assert Path.cwd() != other

    zygote._prepare_settings(_job(tmp_path, PREFECT_API_URL="http://10.9.8.6:4200/api", PREFECT_LOGGING_LEVEL="ERROR"))
    settings = _global_settings()
    assert settings.api.url == "http://10.9.8.6:4200/api"
    assert settings.logging.level == "ERROR"
    assert dict(os.environ) == before
