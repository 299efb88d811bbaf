"""Provider cooldowns: which providers the chain skips for a while, shared by every process that uses one store.

The store is two methods (`CooldownStore`): `cool(provider, seconds)` and `cooling(provider)`. The retry layer
cools a provider that failed past its retries (or asked to wait longer than allowed); the fallback layer skips a
cooling provider unless it is the last option. Implementations:

- `MemoryCooldowns`: this process only (tests, and the fallback of the others).
- `RedisCooldowns`: `<prefix>:cooldown:<provider>` with a PX expiry, on the Redis cache's connection.
- `EmbeddedCooldowns`: the `cooldowns` table of the embedded SQLite cache (the processes of one machine).
- `FailSafeCooldowns`: a shared store plus a memory one; when the shared store fails it warns once and the
  process goes on with the cooldowns it decided itself.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Protocol

from providers.cache import EmbeddedCache, LLMCache, RedisCache, _transaction, warn_unavailable
from vibe.errors import CacheError


class CooldownStore(Protocol):
    """Where cooldowns live. Shared implementations raise `CacheError` when their backend fails."""

    async def cooling(self, provider: str) -> float | None:
        """Seconds `provider` still cools down, or None when it does not."""
        ...

    async def cool(self, provider: str, seconds: float) -> None:
        """Skip `provider` for `seconds` (nothing when `seconds <= 0`)."""
        ...


def _left(until: float, now: float) -> float | None:
    left = until - now
    return left if left > 0 else None


class MemoryCooldowns:
    """Cooldowns of this process, on the monotonic clock."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    async def cooling(self, provider: str) -> float | None:
        return _left(self._until.get(provider, 0.0), time.monotonic())

    async def cool(self, provider: str, seconds: float) -> None:
        if seconds > 0:
            self._until[provider] = max(self._until.get(provider, 0.0), time.monotonic() + seconds)


class RedisCooldowns:
    """Cooldowns in Redis under the cache's prefix, using the cache's connection and failure backoff."""

    def __init__(self, cache: RedisCache) -> None:
        self._cache = cache
        self.location = cache.location

    def _key(self, provider: str) -> str:
        return f"{self._cache.prefix}:cooldown:{provider}"

    async def cooling(self, provider: str) -> float | None:
        client = self._cache._client
        ms = await self._cache._run(lambda: client.pttl(self._key(provider)))
        return int(ms) / 1000 if int(ms) > 0 else None

    async def cool(self, provider: str, seconds: float) -> None:
        if seconds <= 0:
            return
        client = self._cache._client
        ms = max(1, int(seconds * 1000))
        await self._cache._run(lambda: client.set(self._key(provider), b"1", px=ms))


class EmbeddedCooldowns:
    """Cooldowns in the embedded cache's SQLite file, on the wall clock (shared by local processes)."""

    def __init__(self, cache: EmbeddedCache) -> None:
        self._cache = cache
        self.location = cache.location

    def _key(self, provider: str) -> str:
        return f"{self._cache.prefix}:cooldown:{provider}"

    async def cooling(self, provider: str) -> float | None:
        def read(db: sqlite3.Connection) -> float | None:
            row = db.execute("SELECT until FROM cooldowns WHERE key = ?", (self._key(provider),)).fetchone()
            return _left(float(row[0]), time.time()) if row else None

        return await self._cache._run(read)

    async def cool(self, provider: str, seconds: float) -> None:
        if seconds <= 0:
            return

        def store(db: sqlite3.Connection) -> None:
            with _transaction(db):
                db.execute(
                    "INSERT OR REPLACE INTO cooldowns (key, until) VALUES (?, ?)",
                    (self._key(provider), time.time() + seconds),
                )

        await self._cache._run(store)


class FailSafeCooldowns:
    """A shared store backed by this process's own memory: never raises, answers the longer of the two.

    Args:
        shared: the shared store (None: memory only).
        location: where the shared store lives, for the one warning when it fails.
    """

    def __init__(self, shared: CooldownStore | None, location: str = "") -> None:
        self._shared = shared
        self._location = location
        self._local = MemoryCooldowns()

    async def cooling(self, provider: str) -> float | None:
        local = await self._local.cooling(provider)
        if self._shared is None:
            return local
        try:
            shared = await self._shared.cooling(provider)
        except CacheError as exc:
            warn_unavailable(self._location, exc)
            return local
        return max(local or 0.0, shared or 0.0) or None

    async def cool(self, provider: str, seconds: float) -> None:
        await self._local.cool(provider, seconds)
        if self._shared is None:
            return
        try:
            await self._shared.cool(provider, seconds)
        except CacheError as exc:
            warn_unavailable(self._location, exc)


def shared_cooldowns(cache: LLMCache | None) -> RedisCooldowns | EmbeddedCooldowns | None:
    """The shared cooldown store on `cache`'s backend, or None (no cache, or a kind that keeps none)."""
    if isinstance(cache, RedisCache):
        return RedisCooldowns(cache)
    if isinstance(cache, EmbeddedCache):
        return EmbeddedCooldowns(cache)
    return None


def cooldowns_for(cache: LLMCache | None) -> FailSafeCooldowns:
    """The cooldown store of a stack: the shared one beside `cache` (if any), backed by this process's memory."""
    shared = shared_cooldowns(cache)
    return FailSafeCooldowns(shared, shared.location if shared is not None else "")
