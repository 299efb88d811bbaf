"""The provider table: what the project knows about each provider, read once from `models.toml`.

One table (`[providers.<name>]` in `models.toml`) says, per provider, which adapter serves it, which
environment variables hold its key and base URL, whether it works without a key, which Prefect Secret block
and global concurrency limit belong to it, and its models' parameter quirks. The factory, the adapters, the
registry and `deployments/catalog.py` all read it from here; nothing else lists providers.

`Settings` (the ground floor) does not import this package: a provider's Settings field is its variable's name
in lower case without `VIBE_` (`ANTHROPIC_API_KEY` -> `anthropic_api_key`, `VIBE_COMPAT_BASE_URL` ->
`compat_base_url`), and `api_key(settings, provider)` / `base_url(settings, provider)` here read those fields.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from vibe.errors import ConfigError

if TYPE_CHECKING:
    from pydantic import SecretStr

    from vibe.settings import Settings

TABLE_PATH = Path(__file__).with_name("models.toml")


@dataclass(frozen=True)
class Quirks:
    """How one family of models wants its Chat Completions parameters (see `models.toml`)."""

    # OpenAI-compatible servers other than OpenAI only know `max_tokens`.
    limit_field: str = "max_tokens"
    # Reasoning models reject any temperature but the default.
    temperature: bool = True


DEFAULT_QUIRKS = Quirks()


@dataclass(frozen=True)
class ProviderInfo:
    """One row of the provider table."""

    name: str
    adapter: str
    key_env: str | None = None
    base_url_env: str | None = None
    keyless: bool = False
    sdk_finds_key: bool = False
    secret_block: str | None = None
    limit: str | None = None
    quirks: tuple[tuple[str, Quirks], ...] = ()

    @property
    def key_setting(self) -> str | None:
        """The `Settings` field that holds the key (`anthropic_api_key`), or None."""
        return setting_name(self.key_env) if self.key_env else None

    @property
    def base_url_setting(self) -> str | None:
        """The `Settings` field that holds the base URL (`anthropic_base_url`), or None."""
        return setting_name(self.base_url_env) if self.base_url_env else None

    def quirks_for(self, model: str) -> Quirks:
        """The parameter quirks of `model` (the first prefix that matches), else the defaults."""
        for prefix, quirks in self.quirks:
            if model.startswith(prefix):
                return quirks
        return DEFAULT_QUIRKS


def setting_name(env: str) -> str:
    """The `Settings` field an environment variable sets: lower case, without the `VIBE_` prefix."""
    return env.lower().removeprefix("vibe_")


@functools.cache
def load_table(path: Path = TABLE_PATH) -> Mapping[str, Any]:
    """`models.toml` as parsed TOML, read once per process and path (do not mutate it)."""
    with path.open("rb") as fh:
        return MappingProxyType(tomllib.load(fh))


def _row(name: str, cfg: Mapping[str, Any]) -> ProviderInfo:
    quirks = tuple(
        (str(q.get("prefix", "")), Quirks(str(q.get("limit_field", "max_tokens")), bool(q.get("temperature", True))))
        for q in cfg.get("quirks", ())
    )
    return ProviderInfo(
        name=name,
        adapter=str(cfg["adapter"]),
        key_env=cfg.get("key_env"),
        base_url_env=cfg.get("base_url_env"),
        keyless=bool(cfg.get("keyless", False)),
        sdk_finds_key=bool(cfg.get("sdk_finds_key", False)),
        secret_block=cfg.get("secret_block"),
        limit=cfg.get("limit"),
        quirks=quirks,
    )


@functools.cache
def provider_table() -> Mapping[str, ProviderInfo]:
    """Every provider of `models.toml` by name, in the table's order."""
    rows = load_table()["providers"]
    return MappingProxyType({name: _row(name, cfg) for name, cfg in rows.items()})


def provider_info(name: str) -> ProviderInfo:
    """The row of `name`.

    Raises:
        ConfigError: no such provider (the message lists the known ones).
    """
    table = provider_table()
    if name not in table:
        raise ConfigError(f"unknown provider {name!r}; known providers: {', '.join(table)}")
    return table[name]


def api_key(settings: Settings, provider: str) -> SecretStr | None:
    """The API key `settings` hold for `provider` (None when unset or the provider has no key variable)."""
    row = provider_table().get(provider)
    field = row.key_setting if row is not None else None
    value: SecretStr | None = getattr(settings, field) if field else None
    return value


def base_url(settings: Settings, provider: str) -> str | None:
    """The base URL `settings` hold for `provider`; None keeps the SDK's default (which reads its own variable)."""
    row = provider_table().get(provider)
    field = row.base_url_setting if row is not None else None
    value: str | None = getattr(settings, field) if field else None
    return value


def has_key(settings: Settings, provider: str) -> bool:
    """Whether `provider` can be called with `settings`: it is keyless, or its key is set and not empty."""
    row = provider_table().get(provider)
    if row is not None and row.keyless:
        return True
    key = api_key(settings, provider)
    return key is not None and bool(key.get_secret_value())
