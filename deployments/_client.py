"""The one place this package opens a Prefect client and translates Prefect/HTTP errors into ours."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import httpx

from vibe.errors import ConfigError, OrchestrationError
from vibe.settings import Settings

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient


def api_url(settings: Settings) -> str:
    """The Prefect API this process talks to: `PREFECT_API_URL`, else the active Prefect profile's.

    Raises:
        ConfigError: no API is configured. Operations never start Prefect's throwaway ephemeral server:
            a pool or a queued run there would vanish with the process.
    """
    from prefect.settings import get_current_settings

    url = settings.prefect_api_url or get_current_settings().api.url
    if not url:
        raise ConfigError(
            "no Prefect API is configured: start one with `prefect server start` and set "
            "PREFECT_API_URL=http://127.0.0.1:4200/api (or `prefect config set PREFECT_API_URL=...`)"
        )
    return url


@asynccontextmanager
async def prefect_api(settings: Settings) -> AsyncIterator[PrefectClient]:
    """A client of the configured Prefect API; HTTP faults come out as `OrchestrationError`."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    url = api_url(settings)
    try:
        async with get_client() as client:
            yield client
    except ObjectNotFound:
        raise
    except httpx.HTTPStatusError as exc:
        status = exc.response.status_code
        detail = exc.response.text[:300]
        raise OrchestrationError(
            f"the Prefect API at {url} answered {status}: {detail}", retryable=status >= 500 or status == 429
        ) from exc
    except httpx.HTTPError as exc:
        raise OrchestrationError(f"cannot reach the Prefect API at {url}: {exc}") from exc
