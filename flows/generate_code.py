"""generate_code: request -> context from the index -> one model reply -> edits checked against the repository.

Orchestration only. By default nothing is written: the edits are parsed and checked (paths refused, SEARCH
texts matched) against the repository's working tree and returned; `apply=True` writes them there, all or
nothing. The full loop with tests and a pull request is `feature_pipeline`.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.context import FlowRunContext
from pydantic import BaseModel, ConfigDict

from tasks.codegen.apply import plan_edits, write_plan
from tasks.codegen.budget import Budget
from tasks.codegen.generate import Generation, check_budget, prompt_tokens_for
from tasks.codegen.parser import parse_reply
from tasks.codegen.prefect_tasks import ask_model_task, gather_context_task, open_provider_manager
from tasks.codegen.prompt import build_messages
from tasks.indexing.prefect_tasks import index_repository_task
from tasks.step import call_step
from vibe.errors import InputError
from vibe.settings import current_settings


class ProposedEdit(BaseModel):
    """One edit of the reply: its file, its kind (`search_replace`, `whole`, ...) and its SEARCH/REPLACE blocks."""

    model_config = ConfigDict(frozen=True)

    path: str
    kind: str
    blocks: int


class CodeProposal(BaseModel):
    """What `generate_code` returns (frozen; `model_dump(mode="json")` is its JSON).

    Attributes:
        edits: the reply's edits, in order.
        problems: parse errors and SEARCH texts that match zero or several times (nothing is applied then).
        applied: the files written (with `apply=True` and no problems).
        reply: the model's reply.
        model: the model that answered.
        provider: its provider.
        tokens: input plus output tokens.
        cost_usd: what the call cost.
    """

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    edits: list[ProposedEdit]
    problems: list[str]
    applied: list[str]
    reply: str
    model: str
    provider: str
    tokens: int
    cost_usd: float


@flow(name="generate_code", persist_result=False, validate_parameters=False)
def generate_code(
    request: str,
    repo_path: str | Path,
    model: str | None = None,
    apply: bool = False,
) -> CodeProposal:
    """Ask the model for edits that carry out `request` on the repository at `repo_path`.

    Args:
        request: what to change.
        repo_path: the repository (indexed incrementally first).
        model: alias, role or `provider:model` (default: `settings.model`).
        apply: write the edits into the repository's working tree when they are all valid.

    Returns:
        The edits, the problems found (nothing is applied when there are any), the files written, the reply,
        and the call's model, tokens and cost.

    Raises:
        UnsafeEditError: the reply asked for an edit that is refused (nothing was written).
        BudgetExceededError: the prompt alone is over the run's budget.
    """
    settings = current_settings()
    model = model or settings.model
    repo = Path(repo_path).expanduser().resolve()
    if not repo.is_dir():
        raise InputError(f"{repo} is not a directory: pass the path of a git repository")
    call_step(index_repository_task, repo)
    context = call_step(gather_context_task, repo, request, repo, settings)
    messages = build_messages(
        request, budget_tokens=prompt_tokens_for(model), repo_map=context.repo_map, related=context.related
    )
    check_budget(Budget(max_tokens=settings.budget_tokens, max_usd=settings.budget_usd), messages, model=model)
    with open_provider_manager(settings) as manager:
        generation: Generation = call_step(ask_model_task, messages, model, settings=settings, manager=manager)
    parsed = parse_reply(generation.reply)
    problems = [str(p) for p in parsed.problems]
    plan = plan_edits(repo, parsed.edits)
    problems += [str(p) for p in plan.problems]
    applied: list[str] = []
    if apply and not problems and plan.writes:
        applied = list(write_plan(repo, plan))
    result = CodeProposal(
        edits=[
            ProposedEdit(path=e.path, kind=e.kind, blocks=len(e.blocks) if e.kind == "search_replace" else 0)
            for e in parsed.edits
        ],
        problems=problems,
        applied=applied,
        reply=generation.reply,
        model=generation.model,
        provider=generation.provider,
        tokens=generation.input_tokens + generation.output_tokens,
        cost_usd=generation.cost_usd,
    )
    if FlowRunContext.get() is not None:
        create_markdown_artifact(_markdown(request, result), description="generate_code: edits and problems")
    return result


def _markdown(request: str, result: CodeProposal) -> str:
    lines = [f"# generate_code\n\n**Request:** {request.strip()}\n", "| File | Kind | Blocks |", "| --- | --- | --- |"]
    lines += [f"| `{e.path}` | {e.kind} | {e.blocks or '-'} |" for e in result.edits]
    if result.problems:
        lines += ["", "## Problems (sent back to the model in a pipeline run)", ""]
        lines += [f"- {problem}" for problem in result.problems]
    if result.applied:
        lines += ["", "Written: " + ", ".join(f"`{path}`" for path in result.applied)]
    cost = result.cost_usd
    lines += ["", f"Model `{result.model}`: {result.tokens} tokens" + (f", ${cost:.4f}" if cost else "")]
    return "\n".join(lines) + "\n"
