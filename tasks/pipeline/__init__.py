"""The feature pipeline's work, step by step, for `flows/feature_pipeline.py` to orchestrate.

| module | contract |
| --- | --- |
| `preflight.py` | `resolve_repo`, `check_publishable`, `require_sandbox`: refusals before any work |
| `journal.py` | `RunJournal`: the finished steps of a run under its key; `get(step, Model)` is typed |
| `run.py` | `PipelineRun`: what the steps of one run share |
| `attempt.py` | `run_attempt(run, n) -> AttemptRecord` (generate, apply, test, feedback) and `run_attempts` |
| `baseline.py` | `run_baseline`: the tests on the base commit, once (journaled, cached per commit and environment) |
| `evidence.py` | `compare(before, after) -> TestEvidence`: fixed, added, broken, removed, skipped, pre-existing |
| `changes.py` | what the final patch holds (base + the attempts the final state builds on), `drop_stale_files` |
| `publish.py` | `write_patch` (the change as a patch file) and `publish_changes` (its PR, once) |
| `outcome.py` | the typed records (`TestRun`, `PublishedPR`, `AttemptRecord`, `RunSummary`), the markdown |
| `report.py` | `finish`: the summary file, the artifact and the journaled summary |
| `progress.py` | log lines and Prefect artifacts (only inside a flow run) |

Importing this package loads nothing; import the modules.
"""
