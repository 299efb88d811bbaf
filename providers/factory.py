"""`build_provider`: the `Provider` that serves one model, given the settings and the replay mode.

Which adapter serves a provider, and which variables hold its key and base URL, is data (the provider table in
`models.toml`, read by `providers.table`); this module maps adapter names to constructors. The replay mode
(`VIBE_REPLAY`) decides between the real adapter, the cassette, or the real adapter recording into the cassette:

| mode     | result                                                                                      |
| -------- | ------------------------------------------------------------------------------------------- |
| `off`    | the real adapter; a missing API key is a ConfigError naming the variable to set              |
| `replay` | `ReplayProvider(VIBE_CASSETTE)`; the cassette file must exist                                |
| `record` | `RecordingProvider(real adapter, VIBE_CASSETTE)`                                             |
| `auto`   | real when the provider has a key (or needs none), else the cassette when one is set, else the error |

Models of the `replay` provider (`replay:<anything>`) always answer from the cassette.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx2

from providers.base import Provider
from providers.registry import ModelSpec
from providers.replay import RecordingProvider, ReplayProvider
from providers.table import api_key, base_url, has_key, provider_table
from vibe.errors import ConfigError
from vibe.settings import Settings

_Constructor = Callable[[ModelSpec, Settings, "httpx2.AsyncClient | None"], Provider]


def _anthropic(spec: ModelSpec, settings: Settings, http_client: httpx2.AsyncClient | None) -> Provider:
    from providers.anthropic import AnthropicProvider

    return AnthropicProvider(
        api_key=api_key(settings, spec.provider),
        base_url=base_url(settings, spec.provider),
        timeout_s=settings.llm_timeout_s,
        http_client=http_client,
    )


def _openai_compatible(spec: ModelSpec, settings: Settings, http_client: httpx2.AsyncClient | None) -> Provider:
    from providers.openai_compat import OpenAICompatibleProvider

    return OpenAICompatibleProvider(
        spec.provider,
        api_key=api_key(settings, spec.provider),
        base_url=base_url(settings, spec.provider),
        timeout_s=settings.llm_timeout_s,
        http_client=http_client,
    )


# Adapter name (models.toml `adapter = ...`) -> constructor. SDKs are imported only when their adapter is built.
ADAPTERS: dict[str, _Constructor] = {
    "anthropic": _anthropic,
    "openai": _openai_compatible,
}
REPLAY_ADAPTER = "replay"


def build_provider(spec: ModelSpec, settings: Settings, *, http_client: httpx2.AsyncClient | None = None) -> Provider:
    """The provider that answers requests for `spec`, honouring `settings.replay` (see the module docstring).

    Args:
        spec: the resolved model (`ModelRegistry.resolve`).
        settings: API keys, base URLs, timeout, replay mode and cassette.
        http_client: an `httpx2.AsyncClient` for the real adapter (tests, a shared pool); not closed by it.

    Raises:
        ConfigError: the key is missing (the message names the variable), the cassette is not set or its file
            does not exist where replaying needs it, or the adapter is unknown.
    """
    mode = settings.replay
    if spec.adapter == REPLAY_ADAPTER:
        return ReplayProvider(_existing_cassette(spec, settings), spec.provider)
    if spec.adapter not in ADAPTERS:
        raise ConfigError(
            f"provider {spec.provider!r} names adapter {spec.adapter!r}, which does not exist; "
            f"known adapters: {', '.join([*ADAPTERS, REPLAY_ADAPTER])}"
        )
    if mode == "replay":
        return ReplayProvider(_existing_cassette(spec, settings), spec.provider)
    if mode == "record":
        return RecordingProvider(
            _real(spec, settings, http_client), _cassette(spec, settings), max_reply_bytes=settings.max_reply_bytes
        )
    if mode == "auto" and not has_key(settings, spec.provider) and settings.cassette is not None:
        return ReplayProvider(_existing_cassette(spec, settings), spec.provider)
    return _real(spec, settings, http_client)


class MissingKeyError(ConfigError):
    """A model's provider has no API key configured.

    Attributes:
        model: the model's id (`anthropic:claude-sonnet-4-6`).
        env: the variable that holds the key (`ANTHROPIC_API_KEY`).
        hint: what else would answer (a cassette in `auto` replay mode), or "".
    """

    def __init__(self, model: str, env: str, hint: str) -> None:
        self.model, self.env, self.hint = model, env, hint
        super().__init__(f"no API key for {model}: set {env}{hint}")


def missing_keys_message(missing: list[MissingKeyError]) -> str:
    """One short line for a chain whose every model lacks its key: each variable and the hint said once."""
    envs = list(dict.fromkeys(m.env for m in missing))
    needed = envs[0] if len(envs) == 1 else f"{', '.join(envs[:-1])} or {envs[-1]}"
    models = ", ".join(m.model for m in missing)
    return f"no API key for any model of the chain ({models}): set {needed}{missing[0].hint if missing else ''}"


def check_callable(settings: Settings, model: str, fallbacks: tuple[str, ...] | None = None) -> None:
    """Fail at once, before any work, when no model of the chain could be called with these settings.

    Only what can be known without calling: a key, a keyless provider, or replaying from a cassette.

    Raises:
        ConfigError: an unknown model in the chain, or no model of it has a key (one short line).
    """
    from providers.layers.base import Router
    from providers.registry import ModelRegistry

    missing: list[MissingKeyError] = []
    for spec in Router(ModelRegistry.load(), settings.fallbacks).chain(model, fallbacks):
        replaying = settings.replay == "replay" or (settings.replay == "auto" and settings.cassette is not None)
        if spec.adapter == REPLAY_ADAPTER or replaying or has_key(settings, spec.provider):
            return
        row = provider_table().get(spec.provider)
        env = row.key_env if row is not None and row.key_env else f"the API key of {spec.provider}"
        hint = "" if settings.replay != "auto" else " (or set VIBE_CASSETTE to answer from recorded responses)"
        missing.append(MissingKeyError(spec.id, env, hint))
    raise ConfigError(missing_keys_message(missing))


def _real(spec: ModelSpec, settings: Settings, http_client: httpx2.AsyncClient | None) -> Provider:
    if not has_key(settings, spec.provider):
        row = provider_table().get(spec.provider)
        env = row.key_env if row is not None and row.key_env else f"the API key of {spec.provider}"
        hint = "" if settings.replay != "auto" else " (or set VIBE_CASSETTE to answer from recorded responses)"
        raise MissingKeyError(spec.id, env, hint)
    return ADAPTERS[spec.adapter](spec, settings, http_client)


def _cassette(spec: ModelSpec, settings: Settings) -> Path:
    if settings.cassette is None:
        raise ConfigError(
            f"{spec.id} needs a cassette (replay mode {settings.replay!r}): set VIBE_CASSETTE to the cassette file"
        )
    return settings.cassette


def _existing_cassette(spec: ModelSpec, settings: Settings) -> Path:
    path = _cassette(spec, settings)
    if not path.expanduser().is_file():
        raise ConfigError(
            f"cassette {path} does not exist (needed to replay {spec.id}); record one with VIBE_REPLAY=record "
            "and a real API key, or point VIBE_CASSETTE at an existing file"
        )
    return path
