"""End to end: a real Prefect server (PostgreSQL when it answers, else SQLite), `vibe setup` twice,
`prefect deploy --all`, real process workers, runs submitted every way, priorities and limits under
contention, retention, crash detection of a killed worker's run, and the per-provider LLM limit held by
deployed `generate` runs against the fake LLM server (and a run failing when that limit is missing).

Timings are shortened only where the product has a knob for it: heartbeats every 30 s (Prefect's minimum),
crash after 40 s of silence, a deployment waiting for a concurrency slot re-checks every second, workers
poll every second, and queues admit 2 runs per minute so the rate limit shows with a handful of runs. The
LLM limit is set to 1 and the fake LLM server holds the first request until every run waits for the limit.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, WorkPoolUpdate
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
from prefect.client.schemas.objects import FlowRun
from prefect.settings import PREFECT_API_URL, temporary_settings

from cli.demo import REQUEST, SAMPLE_REPO
from deployments import catalog
from deployments.localstack import LocalPrefect, stop_process_group
from deployments.status import run_status
from deployments.submit import submit_run
from tests.demo_script import FIRST_REPLY
from tests.fakes.llm_server import FakeLLMServer
from vibe.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
RATE = 2  # runs per minute per queue in this test
CRASH_AFTER_S = 40
PROBE_LIMIT = 2
LLM_LIMIT = 1  # concurrent calls to the provider across every worker
LLM_RUNS = 2  # Anthropic runs at once, besides one OpenAI run
LLM_KEYS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY")
LLM_MODEL = "anthropic:claude-haiku-4-5"


@dataclass
class Stack:
    prefect: LocalPrefect
    settings: Settings
    setup_outputs: list[dict[str, Any]]
    deployed: list[str]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return self.prefect.client_env()

    def vibe(self, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
        out = subprocess.run(
            [sys.executable, "-m", "cli", *args],
            cwd=ROOT,
            env=self.prefect.client_env(env),
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, f"vibe {' '.join(args)} failed: {out.stderr}"
        result: dict[str, Any] = json.loads(out.stdout)
        return result

    def ensure_workers(self, count: int = 2) -> None:
        self.workers = [w for w in self.workers if w.poll() is None]
        while len(self.workers) < count:
            self.workers.append(self.prefect.start_worker("vibe", name=f"w{uuid.uuid4().hex[:6]}", limit=2, cwd=ROOT))


def _deploy_file(tmp: Path) -> tuple[Path, list[str]]:
    """prefect.yaml with the deployments whose flow exists in this checkout, plus the probe."""
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    present = [d for d in config["deployments"] if (ROOT / d["entrypoint"].split(":")[0]).exists()]
    probe = {
        "name": "probe",
        "entrypoint": "tests/deployments/probe_flow.py:probe",
        "tags": ["vibe"],
        "concurrency_limit": PROBE_LIMIT,
        "work_pool": {"name": "vibe", "work_queue_name": "medium"},
    }
    config["deployments"] = [*present, probe]
    path = tmp / "prefect.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path, [d["name"] for d in config["deployments"]]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("e2e")
    env = {
        "VIBE_CRASH_AFTER_S": str(CRASH_AFTER_S),
        "VIBE_HEARTBEAT_S": "30",
        "VIBE_QUEUE_RATE_PER_MINUTE": str(RATE),
        "VIBE_DEPLOYMENT_CONCURRENCY": "5",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_LOGGING_LEVEL": "INFO",
    }
    server_env = {"PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": "1"}
    with LocalPrefect(home, server_env=server_env, env=env) as prefect:
        settings = Settings(prefect_api_url=prefect.api_url, crash_after_s=CRASH_AFTER_S, queue_rate_per_minute=RATE)
        stack = Stack(prefect=prefect, settings=settings, setup_outputs=[], deployed=[])
        stack.setup_outputs = [stack.vibe("setup", "--json"), stack.vibe("setup", "--json")]
        deploy_file, names = _deploy_file(home)
        out = subprocess.run(
            [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all", "--prefect-file", str(deploy_file)],
            cwd=ROOT,
            env=stack.env(),
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        stack.deployed = names
        with temporary_settings({PREFECT_API_URL: prefect.api_url}):
            yield stack


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _read_run(run_id: uuid.UUID) -> FlowRun:
    async with get_client() as client:
        return await client.read_flow_run(run_id)


def _wait_final(run_ids: list[uuid.UUID], timeout: float = 150.0) -> list[FlowRun]:
    deadline = time.monotonic() + timeout
    while True:
        runs = [_run(_read_run(r)) for r in run_ids]
        if all(r.state is not None and r.state.is_final() for r in runs):
            return runs
        if time.monotonic() > deadline:
            states = [(str(r.id), r.state.name if r.state else None) for r in runs]
            raise AssertionError(f"runs not finished after {timeout:.0f} s: {states}")
        time.sleep(1.0)


async def _probe_runs(stack: Stack, specs: list[tuple[str, dict[str, Any]]], tags: list[str]) -> list[uuid.UUID]:
    async with get_client() as client:
        deployment = await client.read_deployment_by_name("probe/probe")
        ids = []
        for queue, parameters in specs:
            run = await client.create_flow_run_from_deployment(
                deployment.id, parameters=parameters, work_queue_name=queue, tags=tags
            )
            ids.append(run.id)
        return ids


def _events(redis_url: str, prefix: str, kind: str) -> list[dict[str, Any]]:
    client = redis.Redis.from_url(redis_url)
    try:
        return [json.loads(item) for item in client.lrange(f"{prefix}:{kind}", 0, -1)]
    finally:
        client.close()


def test_setup_twice_creates_everything_once_and_deploy_registers_every_flow(stack: Stack) -> None:
    first, second = stack.setup_outputs
    assert any("work pool vibe: created" in line for line in first["changed"])
    assert any("automation" in line for line in first["changed"])
    assert second["changed"] == [], "a second `vibe setup` must change nothing"

    async def inspect() -> tuple[dict[str, int], dict[str, Any], list[str]]:
        async with get_client() as client:
            queues = {q.name: q.priority for q in await client.read_work_queues(work_pool_name="vibe")}
            limit = await client.read_global_concurrency_limit_by_name(catalog.queue_limit_name("high"))
            deployments = await client.read_deployments()
            automations = await client.read_automations_by_name(catalog.CRASH_AUTOMATION)
            assert len(automations) == 1
            assert automations[0].enabled
            by_name = {d.name: d for d in deployments}
            cleanup = by_name.get("cleanup")
            assert cleanup is not None
            assert "vibe" in cleanup.tags
            assert cleanup.global_concurrency_limit is not None
            assert cleanup.global_concurrency_limit.limit == 5
            assert [s.schedule.model_dump().get("cron") for s in cleanup.schedules] == ["0 * * * *"]
            return queues, {"limit": limit.limit, "decay": limit.slot_decay_per_second}, sorted(by_name)

    queues, limit, names = _run(inspect())
    assert {q: queues[q] for q in catalog.QUEUES} == {"critical": 1, "high": 2, "medium": 3, "low": 4}
    assert limit == {"limit": RATE, "decay": pytest.approx(RATE / 60)}
    assert names == sorted(stack.deployed)
    # Nothing secret is stored in a deployment: the pull step carries Secret block names, not values.
    (step,) = yaml.safe_load((ROOT / "prefect.yaml").read_text())["pull"]
    assert step["deployments.steps.prepare_run"]["blocks"] == catalog.SECRET_BLOCKS


def test_runs_submitted_by_vibe_submit_the_python_api_and_prefect_deployment_run_complete(
    stack: Stack, tmp_path: Path
) -> None:
    stack.ensure_workers()
    # The Python API with an idempotency key: the same key is the same run.
    key = f"cleanup-{uuid.uuid4().hex[:8]}"
    first = submit_run(stack.settings, "cleanup", {"dry_run": True}, priority="high", key=key)
    again = submit_run(stack.settings, "cleanup", {"dry_run": True}, priority="high", key=key)
    assert first == again
    ids = [first]

    # `prefect deployment run`, the plain Prefect way.
    out = subprocess.run(
        [sys.executable, "-m", "prefect", "deployment", "run", "cleanup_runs/cleanup", "--param", "dry_run=true"],
        cwd=ROOT, env=stack.env(), capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    match = re.search(r"UUID:\s*([0-9a-f-]{36})", out.stdout)
    assert match, out.stdout
    ids.append(uuid.UUID(match.group(1)))

    # `vibe submit` of a step flow, when that flow is in this checkout.
    if "index" in stack.deployed:
        repo = tmp_path / "repo"
        repo.mkdir()
        (repo / "app.py").write_text("def hello():\n    return 1\n")
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        submitted = stack.vibe("submit", "index", str(repo), "--priority", "critical", "--key", key, "--json")
        resubmitted = stack.vibe("submit", "index", str(repo), "--priority", "critical", "--key", key, "--json")
        assert submitted["run_id"] == resubmitted["run_id"]
        ids.append(uuid.UUID(submitted["run_id"]))

    runs = _wait_final(ids)
    assert [r.state.type.value for r in runs if r.state] == ["COMPLETED"] * len(ids)
    assert runs[0].work_queue_name == "high"
    status = stack.vibe("status", str(first), "--json")
    assert status["state"] == "COMPLETED"
    assert status["progress"] == 100.0
    assert any(a["key"] == "cleanup-report" for a in status["artifacts"])
    assert run_status(stack.settings, first).final


def _states(runs: list[Any]) -> list[tuple[str, str | None, str | None]]:
    return [(r.name, r.state.name if r.state else None, r.state.message if r.state else None) for r in runs]


def test_under_contention_higher_priority_runs_first_and_no_limit_is_exceeded(
    stack: Stack, redis_url: str, redis_prefix: str
) -> None:
    async def pause(paused: bool) -> None:
        async with get_client() as client:
            await client.update_work_pool("vibe", WorkPoolUpdate(is_paused=paused))

    # Priority: queue low-priority runs first, then critical ones, while the pool is paused; then release them
    # to one worker that takes one run at a time: it must take every medium run before any low one.
    for worker in stack.workers:
        stop_process_group(worker)
    stack.workers = []
    _run(pause(True))
    stack.workers.append(stack.prefect.start_worker("vibe", name="single", limit=1, cwd=ROOT))
    tag = f"e2e-{uuid.uuid4().hex[:8]}"
    params = {"redis_url": redis_url, "prefix": redis_prefix, "hold_s": 0.0}
    # Two queues no earlier test of this module started a run on, so each has its whole burst of RATE starts:
    # a run its queue's rate limit holds back waits in the queue, and a lower queue's runs may then go first.
    specs = [("low", {**params, "label": f"low-{i}"}) for i in range(RATE)]
    specs += [("medium", {**params, "label": f"medium-{i}"}) for i in range(RATE)]
    ids = _run(_probe_runs(stack, specs, [tag]))
    _run(pause(False))
    runs = _wait_final(ids, timeout=240)
    assert all(r.state is not None and r.state.is_completed() for r in runs), _states(runs)
    starts = sorted(_events(redis_url, redis_prefix, "starts"), key=lambda e: e["t"])
    order = [e["label"].split("-")[0] for e in starts]
    assert order == ["medium"] * RATE + ["low"] * RATE, order

    # Limits across workers: two workers (4 slots together) against a deployment limited to 2 at once, and
    # the queue rate limit of RATE starts per minute: of RATE + 1 runs on one queue the last must wait for a
    # slot to decay (60 / RATE s), however free the workers are.
    for worker in stack.workers:
        stop_process_group(worker)
    stack.workers = []
    stack.ensure_workers(2)
    prefix_high = f"{redis_prefix}:high"
    more = [("high", {**params, "prefix": prefix_high, "hold_s": 3.0, "label": f"high-{i}"}) for i in range(RATE + 1)]
    ids = _run(_probe_runs(stack, more, [tag]))
    runs = _wait_final(ids, timeout=240)
    assert all(r.state is not None and r.state.is_completed() for r in runs), _states(runs)
    max_active = int(redis.Redis.from_url(redis_url).get(f"{prefix_high}:max_active") or 0)
    assert 1 <= max_active <= PROBE_LIMIT, f"{max_active} probes ran at once; the deployment allows {PROBE_LIMIT}"
    times = sorted(e["t"] for e in _events(redis_url, prefix_high, "starts"))
    assert times[-1] - times[0] >= 0.6 * 60 / RATE, f"{RATE + 1} starts within {times[-1] - times[0]:.1f} s"

    # Retention through the deployed cleanup flow: every completed probe run of this test goes, with a report.
    cleanup = submit_run(
        stack.settings, "cleanup", {"completed_older_than_h": 1 / 3600, "failed_older_than_h": 1000, "tag": tag}
    )
    (done,) = _wait_final([cleanup])
    assert done.state is not None
    assert done.state.is_completed()
    status = run_status(stack.settings, cleanup)
    report = next(a for a in status.artifacts if a.key == "cleanup-report")
    assert report.description is not None
    assert report.description.startswith(f"deleted {2 * RATE + RATE + 1} runs, 0 artifacts"), report.description

    async def remaining() -> int:
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

        async with get_client() as client:
            return await client.count_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[tag])))

    assert _run(remaining()) == 0


def test_a_killed_workers_run_is_marked_crashed_and_frees_its_slot(
    stack: Stack, redis_url: str, redis_prefix: str
) -> None:
    for worker in stack.workers:
        stop_process_group(worker)
    stack.workers = []
    victim = stack.prefect.start_worker("vibe", name="victim", cwd=ROOT)
    params = {"redis_url": redis_url, "prefix": redis_prefix, "hold_s": 600.0, "label": "victim"}
    (run_id,) = _run(_probe_runs(stack, [("medium", params)], []))
    deadline = time.monotonic() + 120
    while not _events(redis_url, redis_prefix, "starts"):
        assert time.monotonic() < deadline, "the long probe never started"
        time.sleep(0.5)
    assert _run(_read_run(run_id)).state.is_running()  # type: ignore[union-attr]

    # SIGTERM the worker (its flow-run process dies with it), then make sure nothing of it survives.
    stop_process_group(victim, grace_s=15)
    (crashed,) = _wait_final([run_id], timeout=CRASH_AFTER_S + 30 + 60)
    assert crashed.state is not None
    assert crashed.state.is_crashed(), crashed.state

    async def probe_slots() -> int:
        async with get_client() as client:
            deployment = await client.read_deployment_by_name("probe/probe")
            assert deployment.global_concurrency_limit is not None
            return deployment.global_concurrency_limit.active_slots

    assert _run(probe_slots()) == 0, "the crashed run still holds its deployment concurrency slot"


@dataclass
class LLMStack:
    server: FakeLLMServer
    keys: dict[str, str]  # environment variable -> the key `vibe setup` put in its Secret block
    worker_logs: list[Path]


@pytest.fixture(scope="module")
def llm_stack(stack: Stack) -> Iterator[LLMStack]:
    """The fake LLM server, configured the way an operator configures real providers.

    The API keys go into their Secret blocks and the limits are set by `vibe setup`, so the keys reach each
    flow-run process through the `export_secrets` pull step, never through a deployment; the endpoints are part
    of the workers' own environment. Two workers.
    """
    keys = {name: f"sk-e2e-{name.split('_')[0].lower()}-{uuid.uuid4().hex}" for name in LLM_KEYS}
    setup_env = {**keys, "VIBE_LLM_CONCURRENCY_PER_PROVIDER": str(LLM_LIMIT)}
    with FakeLLMServer(responder=lambda body: FIRST_REPLY, delay_s=1.0) as server:
        for worker in stack.workers:
            stop_process_group(worker)
        stack.workers = []
        names = [f"llm-{uuid.uuid4().hex[:6]}" for _ in range(2)]
        worker_env = {"ANTHROPIC_BASE_URL": server.anthropic_base_url, "OPENAI_BASE_URL": server.openai_base_url}
        for name in names:
            stack.workers.append(stack.prefect.start_worker("vibe", name=name, limit=2, cwd=ROOT, extra_env=worker_env))
        changed = stack.vibe("setup", "--json", env=setup_env)["changed"]
        assert any(catalog.llm_limit_name("anthropic") in line for line in changed), changed
        yield LLMStack(server, keys, [stack.prefect.home / f"{name}.log" for name in names])
        for worker in stack.workers:
            stop_process_group(worker)
        stack.workers = []


def _sample_repo(path: Path) -> Path:
    shutil.copytree(SAMPLE_REPO, path)
    for command in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "initial"]):
        subprocess.run(
            ["git", "-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid", *command], cwd=path, check=True
        )
    return path


async def _asking(run_ids: list[uuid.UUID]) -> tuple[set[uuid.UUID], list[FlowRun]]:
    """The flow runs whose `ask-model` task is running now, and all the flow runs."""
    async with get_client() as client:
        task_runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=run_ids)))
        flow_runs = [await client.read_flow_run(r) for r in run_ids]
    asking = {
        t.flow_run_id
        for t in task_runs
        if t.flow_run_id is not None and t.name.startswith("ask-model") and t.state is not None and t.state.is_running()
    }
    return asking, flow_runs


async def _llm_limit(provider: str) -> Any:
    async with get_client() as client:
        return await client.read_global_concurrency_limit_by_name(catalog.llm_limit_name(provider))


async def _delete_llm_limit(provider: str) -> None:
    async with get_client() as client:
        await client.delete_global_concurrency_limit_by_name(catalog.llm_limit_name(provider))


async def _create_llm_limit(provider: str, limit: int) -> None:
    async with get_client() as client:
        await client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=catalog.llm_limit_name(provider), limit=limit)
        )


async def _run_logs(run_ids: list[uuid.UUID]) -> str:
    async with get_client() as client:
        logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=run_ids)))
    return "\n".join(log.message for log in logs)


def test_deployed_llm_calls_keep_to_the_providers_limit_and_fail_clearly_without_one(
    stack: Stack, llm_stack: LLMStack, tmp_path: Path
) -> None:
    llm = llm_stack.server
    llm.reset()
    # A server where OpenAI's limit is missing (as if `vibe setup` had never run): its run must fail, clearly,
    # without calling OpenAI unlimited. It runs alongside the Anthropic runs, which keep to their limit.
    _run(_delete_llm_limit("openai"))
    # The first request to arrive waits at the fake provider until every Anthropic run is inside its LLM call,
    # so the others are certainly waiting for the limit while it holds the only slot.
    llm.close_gate()
    runs_of = {f"anthropic-{i}": LLM_MODEL for i in range(LLM_RUNS)} | {"openai": "openai:gpt-5-mini"}
    queues = ["critical", "high", "medium", "low"]  # one run per queue: the test's rate limit is 2 per minute
    ids: dict[str, uuid.UUID] = {}
    for i, (label, model) in enumerate(runs_of.items()):
        repo = _sample_repo(tmp_path / f"repo-{label}")
        parameters = {"request": f"{REQUEST} ({label})", "repo_path": str(repo), "model": model}
        ids[label] = submit_run(stack.settings, "generate", parameters, priority=queues[i])
    limited = [run_id for label, run_id in ids.items() if label != "openai"]
    try:
        deadline = time.monotonic() + 120
        while True:
            asking, runs = _run(_asking(limited))
            finished = [(str(r.id), r.state.name) for r in runs if r.state is not None and r.state.is_final()]
            assert not finished, f"runs finished while the provider held every request: {finished}"
            if len(asking) == LLM_RUNS and llm.in_flight >= 1:
                break
            assert time.monotonic() < deadline, f"{len(asking)} of {LLM_RUNS} runs reached their LLM call"
            time.sleep(0.5)
        assert llm.in_flight == LLM_LIMIT, f"{llm.in_flight} LLM calls in flight; the limit is {LLM_LIMIT}"
        assert _run(_llm_limit("anthropic")).active_slots == LLM_LIMIT
    finally:
        llm.open_gate()
    runs = _wait_final(limited, timeout=120)
    try:
        (unlimited,) = _wait_final([ids["openai"]], timeout=120)
    finally:
        _run(_create_llm_limit("openai", LLM_LIMIT))  # what `vibe setup` would do

    assert [r.state.type.value for r in runs if r.state] == ["COMPLETED"] * LLM_RUNS
    assert llm.calls("anthropic") == LLM_RUNS
    assert llm.max_in_flight == LLM_LIMIT, f"{llm.max_in_flight} LLM calls at once; the limit is {LLM_LIMIT}"
    assert _run(_llm_limit("anthropic")).active_slots == 0, "a finished LLM call still holds its slot"

    assert unlimited.state is not None
    assert unlimited.state.is_failed(), unlimited.state
    message = unlimited.state.message or ""
    assert f"{catalog.llm_limit_name('openai')!r} does not exist" in message, message
    assert "run `vibe setup`" in message, message
    assert llm.calls("openai") == 0, "a run called OpenAI without its limit"

    # The key came from the Secret block, and no key is in any log: not the runs' in Prefect, not the workers'.
    credentials = {r.headers.get("x-api-key") or r.headers.get("authorization", "") for r in llm.requests}
    assert credentials == {f"Bearer {llm_stack.keys['ANTHROPIC_API_KEY']}"}
    logs = [_run(_run_logs(list(ids.values())))] + [log.read_text(errors="replace") for log in llm_stack.worker_logs]
    for key in llm_stack.keys.values():
        assert all(key not in log for log in logs), "an API key is in the logs"
