"""The values of the Secret blocks a flow run exports: read in one API call, and cached by a prefork worker.

Prefect's own templating (`{{ prefect.blocks.secret.NAME }}` in a pull step) reads one block per reference, six
API calls per run. Here: one call lists the Secret blocks with their values (`read_secret_values`, used by the
`export_secrets` pull step when nothing was handed to it), and a prefork worker keeps that answer for
`ttl_s` seconds (`SecretCache`) and hands it to each forked child through the zygote's pipe and the fork
(`hand_over` / `take_handed`), so a forked run reads no Secret block at all. The values travel only there: never
in an environment variable of the worker or the zygote, never in a log line, a step output or an artifact; the
zygote forgets a request's values once it has forked, and the child's `export_secrets` takes them (once).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient, SyncPrefectClient
    from prefect.client.schemas.objects import BlockDocument

BLOCK_TYPE_SLUG = "secret"
DEFAULT_TTL_S = 30.0

_handed: tuple[frozenset[str], dict[str, str]] | None = None


def _values(documents: Iterable[BlockDocument], names: Iterable[str]) -> dict[str, str]:
    """Block name -> value, for the string-valued Secret blocks among `names`."""
    wanted = set(names)
    values: dict[str, str] = {}
    for document in documents:
        value: Any = (document.data or {}).get("value")
        if document.name in wanted and isinstance(value, str):
            values[document.name] = value
    return values


def read_secret_values(client: SyncPrefectClient, names: Iterable[str]) -> dict[str, str]:
    """The values of the Secret blocks `names` that exist: one API call (blocks missing from it are left out)."""
    return _values(client.read_block_documents_by_type(BLOCK_TYPE_SLUG, include_secrets=True), names)


async def aread_secret_values(client: PrefectClient, names: Iterable[str]) -> dict[str, str]:
    """`read_secret_values` on an async client."""
    return _values(await client.read_block_documents_by_type(BLOCK_TYPE_SLUG, include_secrets=True), names)


class SecretCache:
    """A worker's copy of the Secret block values, read again when older than `ttl_s` (a rotated key is seen
    within that time).

    Args:
        names: the Secret blocks to read (the worker hands over these).
        ttl_s: how long an answer is used.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self, names: Iterable[str], *, ttl_s: float = DEFAULT_TTL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.names = tuple(names)
        self.ttl_s = ttl_s
        self._clock = clock
        self._values: dict[str, str] = {}
        self._read_at: float | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> dict[str, str]:
        """The values, read from the API (one call) when the copy is older than `ttl_s`.

        Raises:
            Exception: whatever the API read raises; the caller then hands nothing over and the run reads them.
        """
        from prefect.client.orchestration import get_client

        async with self._lock:
            now = self._clock()
            if self._read_at is None or now - self._read_at >= self.ttl_s:
                async with get_client() as client:
                    self._values = await aread_secret_values(client, self.names)
                self._read_at = now
            return dict(self._values)


def hand_over(names: Iterable[str], values: dict[str, str]) -> None:
    """In a forked child, before the pull steps: the blocks its worker read (`names`) and their `values`."""
    global _handed
    _handed = (frozenset(names), dict(values))


def take_handed(names: Iterable[str]) -> dict[str, str] | None:
    """The handed-over values of `names`, forgotten here once taken.

    None when nothing was handed over, or when the worker did not read all of `names` or found one of them
    missing (it may have been created since): the caller then reads them from the API.
    """
    global _handed
    handed, _handed = _handed, None
    wanted = set(names)
    if handed is None or not wanted <= handed[0] or not wanted <= handed[1].keys():
        return None
    return {name: handed[1][name] for name in wanted}
