"""Fixtures of the provider tests: the fake LLM server (see tests/fakes/llm_server.py)."""

from __future__ import annotations

from tests.fakes.llm_server import llm_server

__all__ = ["llm_server"]
