"""The Secret values a prefork worker hands its runs: read in one call, kept for the TTL, taken once by the run.

Against Prefect's test server (real API, SQLite); the cache's clock is injected, so nothing here waits.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from prefect.blocks.system import Secret

from deployments._secrets import SecretCache, hand_over, take_handed
from deployments.steps import export_secrets
from vibe.errors import ConfigError


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _block() -> str:
    return f"vibe-test-{uuid.uuid4().hex[:10]}"


def test_the_worker_copy_is_read_once_per_ttl_and_a_rotated_value_is_seen_after_it(prefect_harness: None) -> None:
    name = _block()
    Secret(value="first").save(name)
    clock = Clock()
    cache = SecretCache([name, "vibe-test-never-created"], ttl_s=30, clock=clock)

    assert asyncio.run(cache.get()) == {name: "first"}  # a block that does not exist is left out
    Secret(value="rotated").save(name, overwrite=True)
    clock.now = 29.0
    assert asyncio.run(cache.get()) == {name: "first"}  # within the TTL: the copy, no API call
    clock.now = 30.0
    assert asyncio.run(cache.get()) == {name: "rotated"}


def test_a_forked_run_exports_the_handed_values_once_and_reads_what_was_not_handed(
    prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    handed, created_later = _block(), _block()
    Secret(value="from-the-api").save(handed)
    Secret(value="made-after-the-worker-read").save(created_later)
    # Recorded as unset, so that whatever the steps export is removed again after the test.
    monkeypatch.setenv("VIBE_TEST_TOKEN", "")
    monkeypatch.setenv("VIBE_TEST_OTHER", "")

    # The worker's value wins over the server's when everything the step names was handed over.
    hand_over([handed], {handed: "from-the-worker"})
    assert export_secrets({"VIBE_TEST_TOKEN": handed}) == {"exported": ["VIBE_TEST_TOKEN"]}
    assert os.environ["VIBE_TEST_TOKEN"] == "from-the-worker"
    assert take_handed([handed]) is None  # taken once: nothing stays behind in the process

    # A block the worker did not read (created since): the step reads everything from the API instead.
    hand_over([handed], {handed: "from-the-worker"})
    blocks = {"VIBE_TEST_TOKEN": handed, "VIBE_TEST_OTHER": created_later}
    assert export_secrets(blocks) == {"exported": ["VIBE_TEST_OTHER", "VIBE_TEST_TOKEN"]}
    assert os.environ["VIBE_TEST_TOKEN"] == "from-the-api"
    assert os.environ["VIBE_TEST_OTHER"] == "made-after-the-worker-read"

    with pytest.raises(ConfigError, match="run `vibe setup`"):
        export_secrets({"VIBE_TEST_OTHER": "vibe-test-never-created"})
