"""`PipelineRun`: what the steps of one pipeline run share, fixed at its start or accumulated as it goes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from providers.manager import ProviderManager
from tasks.codegen.budget import Budget
from tasks.codegen.generate import CodeContext, prompt_tokens_for
from tasks.codegen.prompt import Exchange
from tasks.pipeline.journal import RunJournal
from tasks.pipeline.outcome import PipelineOutcome
from tasks.pipeline.progress import Progress
from tasks.testing.report import TestReport
from tasks.workspace import ChangeSet
from vibe.settings import Settings

__all__ = ["PipelineRun"]


@dataclass
class PipelineRun:
    """One run of the pipeline.

    Attributes:
        request: what to change.
        model: the model asked (alias, role or `provider:model`).
        settings: the run's settings.
        manager: the provider stack of this run (built once at the flow's entry).
        journal: the run's journal; `outcome.key` is its key.
        repo: the user's repository (never written).
        workspace: the disposable checkout the edits are applied and tested in.
        context: what the model is shown about the repository.
        test_command: the test command (None: detected).
        progress: the run's progress reporting.
        outcome: what the run has done so far.
        budget: what it may spend and has spent.
        changes: the record of the edits `apply` validated: the patch and the PR come from it alone.
        history: the earlier replies with the feedback each got.
        prompt_tokens: the prompt budget of `model`.
        baseline: the tests on the base commit (None: not run yet, or no tests there).
    """

    request: str
    model: str
    settings: Settings
    manager: ProviderManager
    journal: RunJournal
    repo: Path
    workspace: Path
    context: CodeContext
    test_command: str | None
    progress: Progress
    outcome: PipelineOutcome
    budget: Budget
    changes: ChangeSet
    history: list[Exchange] = field(default_factory=list)
    prompt_tokens: int = 0
    baseline: TestReport | None = None

    @classmethod
    def start(
        cls,
        *,
        request: str,
        model: str,
        max_attempts: int,
        settings: Settings,
        manager: ProviderManager,
        journal: RunJournal,
        repo: Path,
        workspace: Path,
        base_commit: str,
        context: CodeContext,
        test_command: str | None,
        progress: Progress,
    ) -> PipelineRun:
        """A run before its first attempt: nothing spent, no edits, the budget from the settings."""
        return cls(
            request=request,
            model=model,
            settings=settings,
            manager=manager,
            journal=journal,
            repo=repo,
            workspace=workspace,
            context=context,
            test_command=test_command,
            progress=progress,
            outcome=PipelineOutcome(request=request, model=model, key=journal.key, max_attempts=max_attempts),
            budget=Budget(max_tokens=settings.budget_tokens, max_usd=settings.budget_usd),
            changes=ChangeSet(base_commit=base_commit),
            prompt_tokens=prompt_tokens_for(model),
        )

    @property
    def max_attempts(self) -> int:
        return self.outcome.max_attempts
