"""Create or update everything the deployments need on a Prefect server, idempotently.

`setup(settings)` compares what the server has with what the settings ask for and writes only the
differences, so a second run reports no change and fails on nothing:

- the process work pool (`settings.work_pool`), whose job template turns on flow-run heartbeats;
- its queues `critical`, `high`, `medium`, `low` at priorities 1..4;
- global concurrency limits: one rate limit per queue (`catalog.queue_limit_burst(rate)` slots that decay
  at `rate / 60` per second) and one concurrency limit per LLM provider;
- the concurrency limit of every deployment already on the pool (`deployment_concurrency`; `prefect.yaml`
  carries the same default, so run `vibe setup` again after a deploy when the setting differs);
- the Prefect variables `prefect.yaml` and the flows read (re-index schedule and repositories);
- the Secret blocks `prefect.yaml` references (filled from the settings; created empty when unset, so the
  reference resolves and the run falls back to the worker's own environment);
- the automation that marks a Running flow run Crashed once its heartbeats stop (a killed worker), which
  also releases the run's deployment concurrency slot.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from deployments import catalog
from deployments._client import api_url, prefect_api
from vibe.errors import ConfigError
from vibe.settings import Settings

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.events.schemas.automations import AutomationCore


@dataclass
class SetupReport:
    """What `setup` found and did.

    Attributes:
        api_url: the Prefect API that was set up.
        changed: one line per object created or updated (empty on a second run).
        unchanged: the objects that already matched.
    """

    api_url: str
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def record(self, what: str, *, changed: bool) -> None:
        (self.changed if changed else self.unchanged).append(what)


async def setup(settings: Settings) -> SetupReport:
    """Create or update the pool, queues, limits, variables, secrets and the crash automation.

    Raises:
        ConfigError: no Prefect API is configured, or a pool of that name exists with another type.
        OrchestrationError: the Prefect API failed.
    """
    report = SetupReport(api_url=api_url(settings))
    async with prefect_api(settings) as client:
        await _ensure_pool(client, settings, report)
        await _ensure_queues(client, settings, report)
        await _ensure_limits(client, settings, report)
        await _ensure_variables(client, settings, report)
        await _ensure_secrets(client, settings, report)
        await _ensure_crash_automation(client, settings, report)
        await _ensure_deployment_limits(client, settings, report)
    return report


def run_setup(settings: Settings) -> SetupReport:
    """Synchronous `setup`, for the CLI and scripts."""
    return asyncio.run(setup(settings))


def pool_job_template(settings: Settings) -> dict[str, Any]:
    """The process worker's default job template with flow-run heartbeats turned on for every run."""
    from prefect.workers.process import ProcessWorker

    template = ProcessWorker.get_default_base_job_template()
    env = template["variables"]["properties"]["env"]
    # Heartbeats drive the crash automation; the pool is the one place every deployment inherits from.
    env["default"] = {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(settings.heartbeat_s)}
    return template


async def _ensure_pool(client: PrefectClient, settings: Settings, report: SetupReport) -> None:
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectNotFound

    name = settings.work_pool
    template = pool_job_template(settings)
    try:
        pool = await client.read_work_pool(name)
    except ObjectNotFound:
        await client.create_work_pool(
            WorkPoolCreate(
                name=name,
                type="process",
                base_job_template=template,
                description="vibe-pipelines: every deployment; queues critical/high/medium/low",
            )
        )
        report.record(f"work pool {name}: created", changed=True)
        return
    if pool.type != "process":
        raise ConfigError(
            f"work pool {name!r} exists with type {pool.type!r}, not 'process': delete it "
            f"(`prefect work-pool delete {name}`) or choose another name with VIBE_WORK_POOL"
        )
    if pool.base_job_template != template:
        await client.update_work_pool(name, WorkPoolUpdate(base_job_template=template))
        report.record(f"work pool {name}: job template updated", changed=True)
    else:
        report.record(f"work pool {name}", changed=False)


async def _ensure_queues(client: PrefectClient, settings: Settings, report: SetupReport) -> None:
    pool = settings.work_pool
    existing = {queue.name: queue for queue in await client.read_work_queues(work_pool_name=pool)}
    # In priority order: the server shifts other queues when a priority is taken, so creating 1, 2, 3, 4 in
    # turn leaves them in place (the pool's `default` queue ends up behind them).
    for name, priority in sorted(catalog.QUEUES.items(), key=lambda item: item[1]):
        queue = existing.get(name)
        if queue is None:
            await client.create_work_queue(name=name, priority=priority, work_pool_name=pool)
            report.record(f"queue {pool}/{name}: created at priority {priority}", changed=True)
        elif queue.priority != priority or queue.is_paused:
            await client.update_work_queue(queue.id, priority=priority, is_paused=False)
            report.record(f"queue {pool}/{name}: priority {queue.priority} -> {priority}", changed=True)
        else:
            report.record(f"queue {pool}/{name}", changed=False)


def desired_limits(settings: Settings) -> dict[str, tuple[int, float | None]]:
    """Global concurrency limits by name: (limit, slot decay per second or None)."""
    rate = settings.queue_rate_per_minute
    limits: dict[str, tuple[int, float | None]] = {
        catalog.queue_limit_name(queue): (catalog.queue_limit_burst(rate), rate / 60.0) for queue in catalog.QUEUES
    }
    for provider in catalog.LLM_PROVIDERS:
        limits[catalog.llm_limit_name(provider)] = (settings.llm_concurrency_per_provider, None)
    return limits


async def _ensure_limits(client: PrefectClient, settings: Settings, report: SetupReport) -> None:
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
    from prefect.exceptions import ObjectNotFound

    for name, (limit, decay) in desired_limits(settings).items():
        try:
            current = await client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            await client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=name, limit=limit, slot_decay_per_second=decay or 0.0, active=True)
            )
            report.record(f"limit {name}: created ({limit}{_decay_text(decay)})", changed=True)
            continue
        current_decay = current.slot_decay_per_second or None
        if current.limit != limit or not current.active or not _same_decay(current_decay, decay):
            await client.update_global_concurrency_limit(
                name,
                GlobalConcurrencyLimitUpdate(limit=limit, slot_decay_per_second=decay or 0.0, active=True),
            )
            report.record(f"limit {name}: set to {limit}{_decay_text(decay)}", changed=True)
        else:
            report.record(f"limit {name}", changed=False)


def _same_decay(a: float | None, b: float | None) -> bool:
    return (a or 0.0) == (b or 0.0) or (a is not None and b is not None and abs(a - b) < 1e-9)


def _decay_text(decay: float | None) -> str:
    return f", decay {decay:.4g}/s" if decay else ""


async def _ensure_variables(client: PrefectClient, settings: Settings, report: SetupReport) -> None:
    from prefect.client.schemas.actions import VariableCreate, VariableUpdate

    wanted: dict[str, Any] = {
        catalog.VAR_REINDEX_CRON: settings.reindex_cron,
        catalog.VAR_REINDEX_REPOS: list(settings.reindex_repos),
    }
    for name, value in wanted.items():
        current = await client.read_variable_by_name(name)
        if current is None:
            await client.create_variable(VariableCreate(name=name, value=value, tags=["vibe"]))
            report.record(f"variable {name}: created", changed=True)
        elif current.value != value:
            await client.update_variable(VariableUpdate(name=name, value=value))
            report.record(f"variable {name}: updated", changed=True)
        else:
            report.record(f"variable {name}", changed=False)


def _secret_values(settings: Settings) -> dict[str, str | None]:
    keys = {
        "ANTHROPIC_API_KEY": settings.anthropic_api_key,
        "OPENAI_API_KEY": settings.openai_api_key,
        "GEMINI_API_KEY": settings.gemini_api_key,
        "XAI_API_KEY": settings.xai_api_key,
        "VIBE_COMPAT_API_KEY": settings.compat_api_key,
        "GITHUB_TOKEN": settings.github_token,
    }
    return {env: (secret.get_secret_value() if secret is not None else None) for env, secret in keys.items()}


async def _ensure_secrets(client: PrefectClient, settings: Settings, report: SetupReport) -> None:
    from prefect.blocks.system import Secret
    from prefect.exceptions import ObjectNotFound

    values = _secret_values(settings)
    for env, block_name in catalog.SECRET_BLOCKS.items():
        value = values[env]
        # Read the document, not `Secret.aload`: loading a block emits an event per call, flushed at exit.
        try:
            document = await client.read_block_document_by_name(block_name, "secret", include_secrets=True)
            current: str | None = str(document.data.get("value", ""))
        except ObjectNotFound:
            current = None
        if value is None:
            # Unset here: keep whatever the server holds (another operator may have set it), but make sure
            # the block exists so `prefect.yaml`'s reference resolves; empty means "use the worker's env".
            if current is None:
                await Secret(value="").asave(block_name)
                report.record(f"secret {block_name}: created empty", changed=True)
            else:
                report.record(f"secret {block_name}", changed=False)
        elif current != value:
            await Secret(value=value).asave(block_name, overwrite=True)
            report.record(f"secret {block_name}: {'updated' if current is not None else 'created'}", changed=True)
        else:
            report.record(f"secret {block_name}", changed=False)


def crash_automation(settings: Settings) -> AutomationCore:
    """The automation that marks a vibe flow run Crashed when its heartbeats stop.

    A run whose process dies (a worker killed with SIGTERM or SIGKILL, a machine lost) stays Running forever
    in Prefect 3 unless something notices. Every run of the pool emits `prefect.flow-run.heartbeat` every
    `heartbeat_s`; this proactive trigger fires when a run that became Running or sent a heartbeat sends
    neither another heartbeat nor a terminal state event within `crash_after_s`. Only runs tagged `vibe`
    (every deployment in `prefect.yaml` carries the tag) are watched, so other projects' runs on the same
    server, which may beat less often, are left alone. Crashed releases the run's deployment concurrency slot.
    """
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    return AutomationCore(
        name=catalog.CRASH_AUTOMATION,
        description=(
            f"Marks a flow run tagged 'vibe' Crashed when it sent no heartbeat for {settings.crash_after_s} s "
            "(its process or worker died). Installed by `vibe setup`."
        ),
        tags=["vibe"],
        trigger=EventTrigger(
            match=ResourceSpecification({"prefect.resource.id": "prefect.flow-run.*"}),
            match_related=ResourceSpecification(
                {"prefect.resource.role": "tag", "prefect.resource.id": "prefect.tag.vibe"}
            ),
            # Running arms it too: a process killed before its first heartbeat reached the server is caught.
            after={"prefect.flow-run.Running", "prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
                # A run handed back by a stopping `vibe worker` waits for another worker without heartbeats.
                "prefect.flow-run.AwaitingRetry",
            },
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=settings.crash_after_s),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"No heartbeat for {settings.crash_after_s} s: the flow run's process or worker died.",
            )
        ],
    )


def _comparable(automation: Any) -> dict[str, Any]:
    data: dict[str, Any] = automation.model_dump(mode="json", include={"description", "enabled", "trigger", "actions"})
    data["trigger"].pop("id", None)
    # `after`, `expect` and `for_each` are sets: their JSON order follows string hashing, which differs
    # between processes, so compare them sorted or a second `vibe setup` would see a change that is not one.
    for name in ("after", "expect", "for_each"):
        if isinstance(data["trigger"].get(name), list):
            data["trigger"][name] = sorted(data["trigger"][name])
    return data


async def _ensure_crash_automation(client: PrefectClient, settings: Settings, report: SetupReport) -> None:
    desired = crash_automation(settings)
    existing = await client.read_automations_by_name(desired.name)
    if not existing:
        await client.create_automation(desired)
        report.record(f"automation {desired.name!r}: created", changed=True)
        return
    keep, *duplicates = existing
    for extra in duplicates:
        await client.delete_automation(extra.id)
        report.record(f"automation {desired.name!r}: removed a duplicate", changed=True)
    if _comparable(keep) != _comparable(desired):
        await client.update_automation(keep.id, desired)
        report.record(f"automation {desired.name!r}: updated", changed=True)
    else:
        report.record(f"automation {desired.name!r}", changed=False)


async def _ensure_deployment_limits(client: PrefectClient, settings: Settings, report: SetupReport) -> None:
    from prefect.client.schemas.actions import DeploymentUpdate
    from prefect.client.schemas.filters import WorkPoolFilter, WorkPoolFilterName

    deployments = await client.read_deployments(
        work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[settings.work_pool]))
    )
    wanted = settings.deployment_concurrency
    for deployment in deployments:
        if "vibe" not in deployment.tags or deployment.name not in catalog.DEPLOYMENTS.values():
            continue
        limit = deployment.global_concurrency_limit
        current = limit.limit if limit is not None else None
        if current != wanted:
            await client.update_deployment(deployment.id, DeploymentUpdate(concurrency_limit=wanted))
            report.record(f"deployment {deployment.name}: concurrency {current} -> {wanted}", changed=True)
        else:
            report.record(f"deployment {deployment.name}: concurrency {wanted}", changed=False)
