"""A deployed flow for the prefork tests: records its process in Redis, then ends as told.

`how`: `return` (completes), `exit` (`os._exit(3)`: the process dies without reporting), `sigkill` (the
process kills itself with SIGKILL), `sleep` (sleeps `hold_s`, for a worker killed under it).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import time

import redis
from prefect import flow
from prefect.runtime import flow_run


@flow(name="crash_probe")
def crash_probe(redis_url: str, prefix: str, how: str = "return", hold_s: float = 0.0) -> str:
    """Record pid, parent pid, session, a random draw and a token fingerprint in `prefix:procs`; end as `how` says."""
    client = redis.Redis.from_url(redis_url)
    record = {
        "run": str(flow_run.id),
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "sid": os.getsid(0),
        "random": random.random(),
        "flow_run_env": os.environ.get("PREFECT__FLOW_RUN_ID"),
        # A fingerprint of the token the pull step exported, never the token itself.
        "github_token_sha256": hashlib.sha256(os.environ.get("GITHUB_TOKEN", "").encode()).hexdigest(),
        "t": time.time(),
    }
    client.rpush(f"{prefix}:procs", json.dumps(record))
    client.close()
    if how == "exit":
        os._exit(3)
    if how == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "sleep":
        time.sleep(hold_s)
    return how
