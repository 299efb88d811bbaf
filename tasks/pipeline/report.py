"""The end of a pipeline run: its summary file, its markdown artifact and its journaled summary."""

from __future__ import annotations

from tasks.pipeline.journal import RunJournal
from tasks.pipeline.outcome import RunSummary, render_run_markdown
from tasks.pipeline.progress import flow_run_id, record_markdown, say
from tasks.pipeline.run import PipelineRun

__all__ = ["finish", "replay_finished"]


def replay_finished(journal: RunJournal) -> RunSummary | None:
    """The summary of a run that already finished under this key (marked `resumed`), or None."""
    finished = journal.get("summary", RunSummary)
    if finished is None:
        return None
    say(f"run {journal.key} already finished; returning its summary (fresh=True / --fresh runs it again)")
    return finished.model_copy(update={"resumed": True})


def finish(run: PipelineRun, *, persist: bool) -> RunSummary:
    """Write the run's `summary.md` and markdown artifact; journal the summary when `persist` (a finished run).

    A refused run is not journaled as finished: a re-run under its key goes through its steps again.
    """
    markdown = render_run_markdown(run.outcome, run.budget)
    run.journal.directory.mkdir(parents=True, exist_ok=True)
    summary_path = run.journal.directory / "summary.md"
    summary_path.write_text(markdown, encoding="utf-8")
    summary = run.outcome.to_summary(run.budget, run_id=flow_run_id(), summary_path=summary_path)
    record_markdown(run.outcome.key, markdown)
    if persist:
        run.journal.put("summary", summary)
    run.progress.advance(100, f"done: {summary.status}")
    return summary
