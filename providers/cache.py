"""The LLM cache: answers keyed by the canonical request, single-flight locks and hit counters.

Two backends behind one `LLMCache` protocol:

- `RedisCache` (redis-py asyncio) when `REDIS_URL` is configured: shared by every process and machine.
- `EmbeddedCache` (a SQLite file under `settings.home`) when it is not: shared by the processes of one machine.

Keys come from `providers.canonical.cache_key` (`<prefix>:llm:v1:<sha256>`), so they never contain an API key;
values are the response JSON, at most `max_entry_bytes` (`VIBE_MAX_REPLY_BYTES`): a larger entry is neither
stored nor returned (the manager refuses such replies first; this is the second line). Layout under the prefix:

```
<prefix>:llm:v1:<sha256>        the cached response (TTL = settings.cache_ttl_s)
<prefix>:llm:stats:hits|misses  counters
<prefix>:llm-lock:v1:<sha256>   single-flight lock: a random token, PX = the lock TTL
<prefix>:cooldown:<provider>    a provider cooling down (written by `cooldowns.py` on this connection)
```

Single-flight: a caller that misses takes the lock (`SET NX PX` + token; released by a compare-and-delete
script), and the others wait for it with backoff, then read the value. A dead holder's lock expires after its
TTL, and no waiter waits longer than that TTL: past it, it goes to the provider itself.

Every backend failure is raised as `vibe.errors.CacheError`; callers treat the cache as absent for that request
(see `warn_unavailable`). Nothing here ever flushes a database: `clear()` deletes this prefix's `llm` keys only.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import redis.asyncio as aioredis
from pydantic import ValidationError
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import NoScriptError, RedisError

from providers.base import CompletionResponse
from vibe.errors import CacheError
from vibe.redact import redact_url
from vibe.settings import Settings

log = logging.getLogger("vibe.providers.cache")

_T = TypeVar("_T")

# Locations (redacted URL or file path) that have already warned in this process: one warning each.
_warned: set[str] = set()
# Embedded stores whose use this process has already announced.
_announced: set[Path] = set()


def warn_unavailable(location: str, error: BaseException) -> None:
    """Log once per process and location that the cache is unusable and requests go straight to the provider."""
    if location in _warned:
        log.debug("LLM cache at %s still unavailable: %s", location, error)
        return
    _warned.add(location)
    log.warning("LLM cache at %s is unavailable (%s); requests go straight to the provider", location, error)


@dataclass(frozen=True)
class CacheStats:
    """Counters of one cache namespace (a prefix)."""

    backend: str
    location: str
    hits: int
    misses: int
    keys: int

    @property
    def hit_rate(self) -> float:
        """Hits over lookups, 0.0 before the first lookup."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The stats as plain JSON-ready data."""
        return {
            "backend": self.backend,
            "location": self.location,
            "hits": self.hits,
            "misses": self.misses,
            "keys": self.keys,
            "hit_rate": round(self.hit_rate, 4),
        }


class LLMCache(Protocol):
    """The LLM cache: answers, single-flight locks and counters (cooldowns are `providers.cooldowns`).

    `backend` is `redis` or `embedded`, `location` where it lives (a URL without password, or a path), `prefix`
    the namespace its keys live under (callers build keys with `cache_key(cache.prefix, ...)`).

    Every method raises `CacheError` when the backend fails, except `lock`'s release, which only warns (the
    lock expires by itself).
    """

    backend: str
    location: str
    prefix: str

    async def get(self, key: str) -> CompletionResponse | None:
        """The response stored under `key`, counting a hit or a miss."""
        ...

    async def peek(self, key: str) -> CompletionResponse | None:
        """The response stored under `key`, without counting (re-reads after waiting on a lock)."""
        ...

    async def put(self, key: str, response: CompletionResponse) -> None:
        """Store `response` under `key` for the configured TTL; an entry over the size cap is not stored."""
        ...

    def lock(self, key: str, *, ttl_s: float) -> AbstractAsyncContextManager[bool]:
        """Hold the single-flight lock of `key`.

        Waits (with backoff) while another holder has it, until the value of `key` appears or at most `ttl_s`.
        Yields True when this caller holds the lock; False when the value appeared meanwhile (read it with
        `peek`) or when it gave up waiting (then it proceeds without the lock).
        """
        ...

    async def stats(self) -> CacheStats:
        """Hits, misses and the number of cached entries of this prefix."""
        ...

    async def clear(self) -> int:
        """Delete this prefix's cached entries and counters; return how many keys were deleted."""
        ...

    async def aclose(self) -> None:
        """Release connections or files."""
        ...


def open_cache(settings: Settings) -> RedisCache | EmbeddedCache:
    """The cache the settings ask for: Redis when `REDIS_URL` is set, else the embedded SQLite store."""
    if settings.redis_url:
        return RedisCache(
            settings.redis_url,
            prefix=settings.cache_prefix,
            ttl_s=settings.cache_ttl_s,
            max_entry_bytes=settings.max_reply_bytes,
        )
    path = settings.home / "llm-cache.sqlite3"
    if path not in _announced:
        _announced.add(path)
        log.info("no REDIS_URL configured: the LLM cache is the embedded store %s (this machine only)", path)
    return EmbeddedCache(
        path, prefix=settings.cache_prefix, ttl_s=settings.cache_ttl_s, max_entry_bytes=settings.max_reply_bytes
    )


def _decode(raw: bytes | str | None, key: str, max_bytes: int | None) -> CompletionResponse | None:
    if raw is None:
        return None
    if max_bytes is not None and len(raw) > max_bytes:
        # Written by an older version or another writer: never hand back more than the reply cap allows.
        log.warning("ignoring an LLM cache entry %s of %d bytes, over the cap of %d", key, len(raw), max_bytes)
        return None
    try:
        return CompletionResponse.model_validate_json(raw)
    except ValidationError:
        # An entry written by an incompatible version: treat as a miss; the next put overwrites it.
        log.warning("ignoring an unreadable LLM cache entry %s", key)
        return None


def _oversize(payload: bytes, key: str, max_bytes: int | None) -> bool:
    if max_bytes is None or len(payload) <= max_bytes:
        return False
    log.warning("not caching %s: the entry is %d bytes, over the cap of %d", key, len(payload), max_bytes)
    return True


_Attempt = Literal["held", "ready", "busy"]


class _LockWaiter(ABC):
    """The waiting half of single-flight, shared by both backends: try, back off, give up after the TTL."""

    _first_poll_s = 0.005
    _max_poll_s = 0.1
    prefix: str
    location: str

    @abstractmethod
    async def _try_lock(self, key: str, lock_key: str, token: str, ttl_s: float) -> _Attempt:
        """`ready` if `key` has a value, else take the lock with `token` for `ttl_s` (`held`) or see it `busy`."""

    @abstractmethod
    async def _unlock(self, lock_key: str, token: str) -> None:
        """Delete the lock if it still holds `token`."""

    def _lock_key(self, key: str) -> str:
        return f"{self.prefix}:llm-lock:{key.removeprefix(f'{self.prefix}:llm:')}"

    @asynccontextmanager
    async def lock(self, key: str, *, ttl_s: float) -> AsyncIterator[bool]:
        lock_key = self._lock_key(key)
        token = secrets.token_hex(16)
        deadline = time.monotonic() + ttl_s
        delay = self._first_poll_s
        attempt = await self._try_lock(key, lock_key, token, ttl_s)
        while attempt == "busy":
            left = deadline - time.monotonic()
            if left <= 0:
                # The holder's lock has had the time it was given: a live holder is slower than the TTL allows,
                # a dead one's lock is about to expire. Either way, waiting longer is not bounded: go ahead.
                log.info("gave up waiting for the single-flight lock after %.1fs; calling the provider", ttl_s)
                break
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, self._max_poll_s)
            attempt = await self._try_lock(key, lock_key, token, ttl_s)
        held = attempt == "held"
        try:
            yield held
        finally:
            if held:
                try:
                    await self._unlock(lock_key, token)
                except CacheError as exc:
                    warn_unavailable(self.location, exc)


# GET the entry and count the lookup in one round trip (the hit path must cost about one GET).
_GET_AND_COUNT = """
local v = redis.call('GET', KEYS[1])
if v then redis.call('INCR', KEYS[2]) else redis.call('INCR', KEYS[3]) end
return v
"""
# One poll of a waiter: is the answer there yet? If not, is the lock free? (1 = took it, 2 = answer ready.)
_READY_OR_LOCK = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 2 end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""
# Delete the lock only if it still holds our token: never release a lock that expired and was re-taken.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisCache(_LockWaiter):
    """The LLM cache in Redis, shared by every process and machine that uses the same URL and prefix.

    After a failure the cache reports itself unavailable for `failure_backoff_s` without touching the network,
    so a dead Redis costs one connection attempt every few seconds rather than one per request.
    """

    backend = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        ttl_s: int,
        failure_backoff_s: float = 5.0,
        max_entry_bytes: int | None = None,
    ) -> None:
        self.location = redact_url(url)
        self.prefix = prefix
        self._max_bytes = max_entry_bytes
        self._ttl_ms = int(ttl_s * 1000)
        self._hits_key = f"{prefix}:llm:stats:hits"
        self._misses_key = f"{prefix}:llm:stats:misses"
        self._failure_backoff_s = failure_backoff_s
        self._down_until = 0.0
        # One quick retry rides over a dropped idle connection; a refused connection fails fast.
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=2.0,
            socket_timeout=5.0,
            retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), 1),
        )
        # Redis names scripts by their SHA-1; not a security use.
        self._get_and_count_sha = hashlib.sha1(_GET_AND_COUNT.encode(), usedforsecurity=False).hexdigest()
        self._release = self._client.register_script(_RELEASE)
        self._ready_or_lock = self._client.register_script(_READY_OR_LOCK)

    async def _run(self, operation: Callable[[], Awaitable[_T]]) -> _T:
        if time.monotonic() < self._down_until:
            raise CacheError(f"Redis at {self.location} failed less than {self._failure_backoff_s:.0f}s ago")
        try:
            return await operation()
        except (RedisError, OSError) as exc:
            self._down_until = time.monotonic() + self._failure_backoff_s
            raise CacheError(f"Redis at {self.location}: {type(exc).__name__}: {exc}") from exc

    async def get(self, key: str) -> CompletionResponse | None:
        return _decode(await self._run(lambda: self._lookup(key)), key, self._max_bytes)

    async def _lookup(self, key: str) -> bytes | None:
        # EVALSHA directly (not redis-py's Script wrapper): the hit path is this one command, nothing more.
        try:
            raw: bytes | None = await self._client.evalsha(
                self._get_and_count_sha, 3, key, self._hits_key, self._misses_key
            )
        except NoScriptError:
            # A restarted or flushed server forgot the script: load it once and go on.
            await self._client.script_load(_GET_AND_COUNT)
            raw = await self._client.evalsha(self._get_and_count_sha, 3, key, self._hits_key, self._misses_key)
        return raw

    async def peek(self, key: str) -> CompletionResponse | None:
        raw = await self._run(lambda: self._client.get(key))
        return _decode(raw, key, self._max_bytes)

    async def put(self, key: str, response: CompletionResponse) -> None:
        payload = response.model_dump_json().encode()
        if _oversize(payload, key, self._max_bytes):
            return
        await self._run(lambda: self._client.set(key, payload, px=self._ttl_ms))

    async def _try_lock(self, key: str, lock_key: str, token: str, ttl_s: float) -> _Attempt:
        px = max(1, int(ttl_s * 1000))
        outcome = await self._run(lambda: self._ready_or_lock(keys=[key, lock_key], args=[token, px]))
        return "ready" if outcome == 2 else "held" if outcome == 1 else "busy"

    async def _unlock(self, lock_key: str, token: str) -> None:
        await self._run(lambda: self._release(keys=[lock_key], args=[token]))

    async def stats(self) -> CacheStats:
        async def read() -> CacheStats:
            hits, misses = await self._client.mget(self._hits_key, self._misses_key)
            keys = 0
            async for _ in self._client.scan_iter(match=f"{self.prefix}:llm:v1:*", count=1000):
                keys += 1
            return CacheStats(self.backend, self.location, int(hits or 0), int(misses or 0), keys)

        return await self._run(read)

    async def clear(self) -> int:
        async def delete() -> int:
            deleted = 0
            batch: list[bytes] = []
            async for key in self._client.scan_iter(match=f"{self.prefix}:llm:*", count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    deleted += int(await self._client.delete(*batch))
                    batch.clear()
            if batch:
                deleted += int(await self._client.delete(*batch))
            return deleted

        return await self._run(delete)

    async def aclose(self) -> None:
        try:
            await self._client.aclose()
        except (RedisError, OSError) as exc:
            log.debug("closing the Redis client failed: %s", exc)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS llm_entries (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS llm_counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS llm_locks (key TEXT PRIMARY KEY, token TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS cooldowns (key TEXT PRIMARY KEY, until REAL NOT NULL);
"""


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    # BEGIN IMMEDIATE takes the write lock up front, so two processes never both pass a check-then-write.
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class EmbeddedCache(_LockWaiter):
    """The LLM cache in a local SQLite file: used when no `REDIS_URL` is configured.

    Safe across the processes of one machine: SQLite's file locks serialise writers (WAL journal, a busy
    timeout), locks and cooldowns are rows with a wall-clock expiry. Calls run in a worker thread so a busy
    database never blocks the event loop.
    """

    backend = "embedded"

    def __init__(self, path: Path, *, prefix: str, ttl_s: int, max_entry_bytes: int | None = None) -> None:
        self.location = str(path)
        self.prefix = prefix
        self._max_bytes = max_entry_bytes
        self._ttl_s = ttl_s
        self._hits = f"{prefix}:llm:stats:hits"
        self._misses = f"{prefix}:llm:stats:misses"
        self._mutex = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise CacheError(f"embedded LLM cache at {path}: {exc}") from exc

    def _sync(self, operation: Callable[[sqlite3.Connection], _T]) -> _T:
        with self._mutex:
            try:
                return operation(self._db)
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.rollback()
                raise CacheError(f"embedded LLM cache at {self.location}: {exc}") from exc

    async def _run(self, operation: Callable[[sqlite3.Connection], _T]) -> _T:
        return await asyncio.to_thread(self._sync, operation)

    def _read(self, db: sqlite3.Connection, key: str) -> bytes | None:
        row = db.execute("SELECT value, expires_at FROM llm_entries WHERE key = ?", (key,)).fetchone()
        if row is None or row[1] <= time.time():
            return None
        value: bytes = row[0]
        return value

    async def get(self, key: str) -> CompletionResponse | None:
        def lookup(db: sqlite3.Connection) -> bytes | None:
            value = self._read(db, key)
            db.execute(
                "INSERT INTO llm_counters (name, value) VALUES (?, 1) "
                "ON CONFLICT(name) DO UPDATE SET value = value + 1",
                (self._hits if value is not None else self._misses,),
            )
            return value

        return _decode(await self._run(lookup), key, self._max_bytes)

    async def peek(self, key: str) -> CompletionResponse | None:
        return _decode(await self._run(lambda db: self._read(db, key)), key, self._max_bytes)

    async def put(self, key: str, response: CompletionResponse) -> None:
        payload = response.model_dump_json().encode()
        if _oversize(payload, key, self._max_bytes):
            return

        def store(db: sqlite3.Connection) -> None:
            now = time.time()
            with _transaction(db):
                db.execute(
                    "INSERT OR REPLACE INTO llm_entries (key, value, expires_at) VALUES (?, ?, ?)",
                    (key, payload, now + self._ttl_s),
                )
                # Expired entries are swept on write; writes follow a provider call, so this is never hot.
                db.execute("DELETE FROM llm_entries WHERE expires_at <= ?", (now,))

        await self._run(store)

    async def _try_lock(self, key: str, lock_key: str, token: str, ttl_s: float) -> _Attempt:
        def acquire(db: sqlite3.Connection) -> _Attempt:
            now = time.time()
            with _transaction(db):
                if self._read(db, key) is not None:
                    return "ready"
                db.execute("DELETE FROM llm_locks WHERE key = ? AND expires_at <= ?", (lock_key, now))
                inserted = db.execute(
                    "INSERT OR IGNORE INTO llm_locks (key, token, expires_at) VALUES (?, ?, ?)",
                    (lock_key, token, now + ttl_s),
                ).rowcount
            return "held" if inserted == 1 else "busy"

        return await self._run(acquire)

    async def _unlock(self, lock_key: str, token: str) -> None:
        def release(db: sqlite3.Connection) -> None:
            with _transaction(db):
                db.execute("DELETE FROM llm_locks WHERE key = ? AND token = ?", (lock_key, token))

        await self._run(release)

    async def stats(self) -> CacheStats:
        def read(db: sqlite3.Connection) -> CacheStats:
            counters = dict(
                db.execute(
                    "SELECT name, value FROM llm_counters WHERE name IN (?, ?)", (self._hits, self._misses)
                ).fetchall()
            )
            start = f"{self.prefix}:llm:v1:"
            (keys,) = db.execute(
                "SELECT COUNT(*) FROM llm_entries WHERE substr(key, 1, ?) = ? AND expires_at > ?",
                (len(start), start, time.time()),
            ).fetchone()
            return CacheStats(
                self.backend,
                self.location,
                int(counters.get(self._hits, 0)),
                int(counters.get(self._misses, 0)),
                int(keys),
            )

        return await self._run(read)

    async def clear(self) -> int:
        def delete(db: sqlite3.Connection) -> int:
            start = f"{self.prefix}:llm:"
            with _transaction(db):
                entries = db.execute(
                    "DELETE FROM llm_entries WHERE substr(key, 1, ?) = ?", (len(start), start)
                ).rowcount
                counters = db.execute(
                    "DELETE FROM llm_counters WHERE name IN (?, ?)", (self._hits, self._misses)
                ).rowcount
            return int(entries) + int(counters)

        return await self._run(delete)

    async def aclose(self) -> None:
        with self._mutex:
            self._db.close()
