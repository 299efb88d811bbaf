"""Thin Prefect task wrappers over the pull-request functions.

No task retries here: GitHub API faults are retried inside `GitHubClient` (the one retry layer), and a failed
push is not retryable by repetition (a lease, hook or fast-forward rejection needs a new run or a fix). No
caching either: the inputs include `Settings`, whose secrets must never feed a cache key.

The task takes the function's parameters unchanged, so the pipeline passes `changes=ChangeSet(...)` (the
record of validated edits) and never `source=` a workspace.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.pull_requests.publish import publish_pull_request

publish_pull_request_task = task(name="publish_pull_request", cache_policy=NO_CACHE, retries=0)(publish_pull_request)

__all__ = ["publish_pull_request_task"]
