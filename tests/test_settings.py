"""The settings object: what a user sets in the environment is what the project sees, secrets stay hidden."""

from __future__ import annotations

from pathlib import Path

import pytest

from vibe.settings import Settings


def test_conventional_and_project_variables_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret-1")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/5")
    monkeypatch.setenv("GITHUB_API_URL", "http://127.0.0.1:9/api/v3")
    monkeypatch.setenv("VIBE_HOME", str(tmp_path))
    monkeypatch.setenv("VIBE_MODEL", "fast")
    monkeypatch.setenv("VIBE_FALLBACKS", "openai:gpt-5, xai:grok-4")
    settings = Settings()
    assert settings.api_key("anthropic") is not None
    assert settings.api_key("anthropic").get_secret_value() == "sk-ant-secret-1"  # type: ignore[union-attr]
    assert settings.redis_url == "redis://127.0.0.1:6379/5"
    assert settings.github_api_url == "http://127.0.0.1:9/api/v3"
    assert settings.home == tmp_path
    assert settings.model == "fast"
    assert settings.fallbacks == ("openai:gpt-5", "xai:grok-4")


def test_secrets_never_show_in_repr_or_dump(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-very-secret")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_very_secret")
    settings = Settings()
    shown = repr(settings) + str(settings) + settings.model_dump_json()
    assert "sk-openai-very-secret" not in shown
    assert "ghp_very_secret" not in shown
    assert set(settings.secret_values()) == {"sk-openai-very-secret", "ghp_very_secret"}


def test_unrelated_shell_variables_do_not_leak_in(monkeypatch: pytest.MonkeyPatch) -> None:
    # HOME and MODEL are common shell variables; only VIBE_HOME / VIBE_MODEL may set these fields.
    monkeypatch.delenv("VIBE_HOME", raising=False)
    monkeypatch.delenv("VIBE_MODEL", raising=False)
    monkeypatch.setenv("HOME", "/somewhere/else")
    monkeypatch.setenv("MODEL", "openai:gpt-5")
    settings = Settings()
    assert settings.home == Path("/somewhere/else") / ".vibe"
    assert settings.model == "smart"


def test_a_bad_value_is_rejected_with_the_variable_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv("VIBE_REPLAY", "sometimes")
    with pytest.raises(ValidationError, match="replay"):
        Settings()
