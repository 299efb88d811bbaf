"""Secrets never reach a log line, whichever logger writes it."""

from __future__ import annotations

import logging

import pytest

from vibe.redact import install_redaction


def test_secrets_are_scrubbed_from_messages_arguments_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    install_redaction(["sk-test-redact-0123456789"])
    log = logging.getLogger("some.library")
    with caplog.at_level(logging.INFO):
        log.info("calling with key %s", "sk-test-redact-0123456789")
        log.warning("header Authorization: Bearer sk-test-redact-0123456789")
        try:
            raise RuntimeError("bad key sk-test-redact-0123456789")
        except RuntimeError:
            log.exception("request failed")
    assert "sk-test-redact-0123456789" not in caplog.text
    assert caplog.text.count("[REDACTED]") >= 3
    assert "calling with key [REDACTED]" in caplog.text
