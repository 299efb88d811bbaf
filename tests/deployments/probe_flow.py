"""A trivial deployed flow for the end-to-end tests: it records when it starts and ends in Redis.

`active` counts the probes running at this moment across every worker process; `max_active` keeps the
highest value seen, so a test reads the maximum concurrency that was really observed.
"""

from __future__ import annotations

import json
import time

import redis
from prefect import flow
from prefect.runtime import flow_run

# INCR the active counter and raise max_active to it, atomically.
_ENTER = """
local n = redis.call('INCR', KEYS[1])
local m = tonumber(redis.call('GET', KEYS[2]) or '0')
if n > m then redis.call('SET', KEYS[2], n) end
return n
"""


@flow(name="probe")
def probe(redis_url: str, prefix: str, label: str = "", hold_s: float = 1.0) -> str:
    """Hold for `hold_s` seconds, recording start and end under `prefix` in Redis."""
    client = redis.Redis.from_url(redis_url)
    try:
        client.eval(_ENTER, 2, f"{prefix}:active", f"{prefix}:max_active")
        started = time.time()
        client.rpush(f"{prefix}:starts", json.dumps({"label": label, "t": started, "run": str(flow_run.id)}))
        time.sleep(hold_s)
        client.rpush(f"{prefix}:ends", json.dumps({"label": label, "t": time.time(), "run": str(flow_run.id)}))
        client.decr(f"{prefix}:active")
    finally:
        client.close()
    return label
