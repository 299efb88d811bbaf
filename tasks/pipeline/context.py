"""What the model is shown about the repository: search hits and the repo map, led by the localized files.

With `VIBE_LOCALIZE=on` a cheap model role is first shown the repo map and the ranked candidates and names the
files (and symbols) to change (`tasks.indexing.localize`); those files go whole into the prompt ahead of the
search hits. A localization that fails (no key for the cheap model, a provider fault) is not the run's end:
the ranking alone is used, and the log says why.
"""

from __future__ import annotations

from pathlib import Path

from providers.manager import ProviderManager
from tasks.codegen.generate import CodeContext, read_context_files
from tasks.codegen.prefect_tasks import gather_context_task
from tasks.indexing.prefect_tasks import localize_request_task
from tasks.pipeline.progress import say
from tasks.step import call_step
from vibe.errors import VibeError
from vibe.settings import Settings

__all__ = ["build_context"]


def build_context(
    repo: Path, request: str, workspace: Path, *, settings: Settings, manager: ProviderManager
) -> CodeContext:
    """The repo map and the related code for `request`; localized files first when `settings.localize`."""
    context: CodeContext = call_step(gather_context_task, repo, request, workspace, settings)
    if not settings.localize:
        return context
    try:
        found = call_step(localize_request_task, repo, request, manager=manager, model=settings.localize_model)
    except VibeError as exc:
        say(f"localization skipped ({exc}); the prompt shows the ranked search hits")
        return context
    if found.note:
        say(f"localization: {found.note}")
    whole = read_context_files(workspace, list(found.files))
    named = {item.path for item in whole}
    say(f"localization ({found.source}): {', '.join(sorted(named)) or 'no file'}")
    related = (*whole, *(item for item in context.related if item.path not in named))
    return CodeContext(repo_map=context.repo_map, related=related)
