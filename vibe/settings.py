"""One settings object, read from the environment once at the entry point and passed down.

Nothing in the project reads `os.environ` for configuration except this module; nothing builds `Settings`
at import time. Secrets are `SecretStr` so that printing a `Settings` never shows them.

Flows never take `Settings` as a parameter (a deployment's parameter schema would show every key): a flow
calls `current_settings()`, which is what the caller handed in with `use_settings(...)` (the CLI, tests, Python
callers), or else the environment read once (a deployed flow run, whose Secret blocks are exported into it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _alias(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    """Every setting of vibe-pipelines, each with the environment variable that sets it.

    Construct it with keyword arguments in tests (`Settings(redis_url=...)`); the entry points use
    `Settings()` which reads the environment.
    """

    model_config = SettingsConfigDict(
        env_prefix="VIBE_",
        case_sensitive=False,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
        # `inf` or `nan` for a timeout would overflow later (deep in asyncio or subprocess); refuse it here.
        allow_inf_nan=False,
    )

    # --- LLM providers -----------------------------------------------------------------------------
    anthropic_api_key: SecretStr | None = Field(None, validation_alias=_alias("ANTHROPIC_API_KEY"))
    openai_api_key: SecretStr | None = Field(None, validation_alias=_alias("OPENAI_API_KEY"))
    gemini_api_key: SecretStr | None = Field(None, validation_alias=_alias("GEMINI_API_KEY", "GOOGLE_API_KEY"))
    xai_api_key: SecretStr | None = Field(None, validation_alias=_alias("XAI_API_KEY"))
    compat_api_key: SecretStr | None = Field(None)
    # The SDKs' own variables keep working: None means "let the SDK decide".
    anthropic_base_url: str | None = Field(None, validation_alias=_alias("ANTHROPIC_BASE_URL"))
    openai_base_url: str | None = Field(None, validation_alias=_alias("OPENAI_BASE_URL"))
    gemini_base_url: str = Field(
        "https://generativelanguage.googleapis.com/v1beta/openai/", validation_alias=_alias("GEMINI_BASE_URL")
    )
    xai_base_url: str = Field("https://api.x.ai/v1", validation_alias=_alias("XAI_BASE_URL"))
    # Any OpenAI-compatible server (Ollama, vLLM, a proxy), addressed as `compat:<model>`.
    compat_base_url: str = Field("http://127.0.0.1:11434/v1")

    model: str = Field("smart")
    fallbacks: Annotated[tuple[str, ...] | None, NoDecode] = Field(None)
    llm_timeout_s: float = Field(120.0, gt=0)
    llm_max_retries: int = Field(2, ge=0, le=10)
    llm_max_retry_wait_s: float = Field(60.0, ge=0)
    provider_cooldown_s: float = Field(60.0, ge=0)
    # Exponential backoff between the manager's retries starts here (then doubles, with jitter).
    llm_retry_base_s: float = Field(0.5, ge=0)
    # In-process concurrent calls per provider; cross-process limits are Prefect global concurrency limits.
    llm_concurrency: int = Field(8, ge=1)
    # Replay: `off` uses real providers; `replay` answers from the cassette; `record` calls the real provider
    # and writes its answers into the cassette.
    replay: str = Field("auto", pattern="^(auto|off|replay|record)$")
    cassette: Path | None = None

    # --- cache -------------------------------------------------------------------------------------
    redis_url: str | None = Field(None, validation_alias=_alias("REDIS_URL"))
    cache_prefix: str = Field("vibe")
    cache_ttl_s: int = Field(7 * 24 * 3600, ge=1)
    # `VIBE_CACHE=off` (or `VIBE_CACHE_ENABLED=false`, the older name) turns the LLM cache off.
    cache_enabled: bool = Field(True, validation_alias=_alias("VIBE_CACHE", "VIBE_CACHE_ENABLED", "cache_enabled"))
    # How long a single-flight lock outlives a crashed holder; None = llm_timeout_s + 10 s.
    cache_lock_ttl_s: float | None = Field(None, gt=0)

    # --- GitHub ------------------------------------------------------------------------------------
    github_token: SecretStr | None = Field(None, validation_alias=_alias("GITHUB_TOKEN"))
    github_api_url: str = Field("https://api.github.com", validation_alias=_alias("GITHUB_API_URL"))
    pr_draft_on_failure: bool = Field(True)
    pr_labels: Annotated[tuple[str, ...], NoDecode] = Field(("vibe",))
    # The GitHub adapter is the one retry layer for GitHub API calls (PyGithub's own retry is off).
    github_max_retries: int = Field(3, ge=0, le=10)
    github_max_retry_wait_s: float = Field(60.0, ge=0)
    # GitHub asks integrations to space mutating requests by about a second; 0 turns the pause off (tests).
    github_write_interval_s: float = Field(1.0, ge=0)
    github_cache_ttl_s: float = Field(3600.0, ge=0)

    # --- pipeline ----------------------------------------------------------------------------------
    max_attempts: int = Field(3, ge=1, le=20)
    budget_usd: float | None = Field(None, ge=0)
    budget_tokens: int | None = Field(None, ge=0)
    # A cheap model role names the files (and symbols) to change before the edits; they go whole into the prompt.
    localize: bool = Field(False)
    localize_model: str = Field("cheap")
    # The largest model reply accepted; a longer one is refused before it is cached or journaled.
    max_reply_bytes: int = Field(2_000_000, ge=1024)

    # --- code index --------------------------------------------------------------------------------
    # An embedding model makes `vibe search` hybrid (vector kNN over all chunks fused with BM25); None: lexical.
    embedding_model: str | None = Field(None)
    # OpenAI-compatible endpoint for embeddings (default: OPENAI_BASE_URL, else the SDK's); key: OPENAI_API_KEY.
    embedding_base_url: str | None = Field(None)

    # --- test runner -------------------------------------------------------------------------------
    test_timeout_s: float = Field(900.0, gt=0)
    test_memory_mb: int = Field(4096, ge=64)
    # `required`: model-written code runs only under bubblewrap (refused without it); `unsafe`: the user opts in
    # to running it without isolation (a warning on every run). The user's own tree (`vibe test`) may always run.
    sandbox: str = Field("required", pattern="^(required|unsafe)$")

    # --- Prefect and operations --------------------------------------------------------------------
    prefect_api_url: str | None = Field(None, validation_alias=_alias("PREFECT_API_URL"))
    home: Path = Field(default_factory=lambda: Path.home() / ".vibe")
    retention_completed_h: float = Field(24.0, gt=0)
    retention_failed_h: float = Field(48.0, gt=0)
    reindex_repos: Annotated[tuple[str, ...], NoDecode] = Field(())
    reindex_cron: str = Field("0 */6 * * *")
    # The one process work pool every deployment runs on (queues critical/high/medium/low inside it).
    work_pool: str = Field("vibe", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    # Runs of one deployment at a time (the seed's "5 per worker type"); deployed via a Prefect variable.
    deployment_concurrency: int = Field(5, ge=1)
    # Flow runs a queue may start per minute (global concurrency limit with slot decay, one per queue).
    queue_rate_per_minute: int = Field(100, ge=1)
    # Concurrent LLM calls per provider across every worker (one global concurrency limit per provider).
    llm_concurrency_per_provider: int = Field(5, ge=1)
    # Seconds between flow-run heartbeats (Prefect's minimum is 30) and the silence after which the
    # crash-detection automation marks a Running flow run Crashed.
    heartbeat_s: int = Field(30, ge=30)
    crash_after_s: int = Field(60, ge=31)
    # `vibe worker start`: on SIGTERM/SIGINT, how long in-flight runs may go on before they are handed back
    # to the pool, and how many runs one worker runs at once (None: no limit of its own).
    worker_grace_s: float = Field(30.0, ge=0)
    worker_limit: int | None = Field(None, ge=1)
    # How `vibe worker start` starts each flow run's process: forked from a warm parent, or a new interpreter.
    worker_launch: str = Field("prefork", pattern="^(prefork|engine)$")

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and value.strip() and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"REDIS_URL must start with redis://, rediss:// or unix:// (got {value[:40]!r})")
        return value.strip() or None if value is not None else None

    @field_validator("fallbacks", "pr_labels", "reindex_repos", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        # Lists come from the environment as comma-separated strings (NoDecode keeps them raw, not JSON).
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @classmethod
    def load(cls) -> Settings:
        """Read the environment, and scrub the secrets it holds from every later log line of this process.

        Entry points (CLI commands, flows started by a worker) call this once; tests construct `Settings(...)`.
        """
        from vibe.errors import ConfigError
        from vibe.redact import install_redaction

        settings = cls()
        install_redaction(settings.secret_values())
        try:
            settings.home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"invalid configuration: VIBE_HOME={settings.home} cannot be created ({exc.strerror}); "
                "point it at a writable directory"
            ) from exc
        return settings

    def api_key(self, provider: str) -> SecretStr | None:
        """The API key configured for `provider`, or None.

        Which providers exist, and which variable holds each key, is the provider table's business
        (`providers/models.toml`, read by `providers.table.api_key`); this only reads the field that table names,
        `<provider>_api_key`, so that the ground floor lists no providers of its own.
        """
        value = getattr(self, f"{provider}_api_key", None) if provider.isidentifier() else None
        return value if isinstance(value, SecretStr) else None

    def secret_values(self) -> list[str]:
        """Every configured secret (each `SecretStr` field) in clear, for redaction filters. Never log the result."""
        secrets = [getattr(self, name) for name in type(self).model_fields]
        return [s.get_secret_value() for s in secrets if isinstance(s, SecretStr) and s.get_secret_value()]


_CURRENT: ContextVar[Settings | None] = ContextVar("vibe_settings", default=None)


@contextmanager
def use_settings(settings: Settings) -> Iterator[Settings]:
    """Make `settings` what `current_settings()` returns in this context (flows and tasks called inside it)."""
    token = _CURRENT.set(settings)
    try:
        yield settings
    finally:
        _CURRENT.reset(token)


def current_settings() -> Settings:
    """The settings handed in with `use_settings`, else the environment's (an entry point such as a deployed run).

    Raises:
        ConfigError: a variable of the environment holds an invalid value (the message names each one).
    """
    handed_in = _CURRENT.get()
    return handed_in if handed_in is not None else load_settings()


def env_name(field: str) -> str:
    """The environment variable that sets `field` (`test_timeout_s` -> `VIBE_TEST_TIMEOUT_S`)."""
    info = Settings.model_fields.get(field)
    if info is None:  # an error of an aliased field names the alias: it is the variable already
        return field.upper()
    alias = info.validation_alias
    if isinstance(alias, AliasChoices) and alias.choices and isinstance(alias.choices[0], str):
        return alias.choices[0].upper()
    return f"VIBE_{field.upper()}"


def load_settings() -> Settings:
    """`Settings.load()` with every invalid value named by its variable in one `ConfigError`.

    Raises:
        ConfigError: `invalid configuration: VIBE_TEST_TIMEOUT_S: Input should be a finite number; ...`.
    """
    from pydantic import ValidationError

    from vibe.errors import ConfigError

    try:
        return Settings.load()
    except ValidationError as exc:
        problems = "; ".join(
            f"{env_name(str(e['loc'][0])) if e['loc'] else 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from exc
