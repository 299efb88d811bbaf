"""Keep secrets out of logs: every log record of the process is scrubbed of the configured secret values.

Installed once per process at the entry point (CLI commands, flow entry), after Settings is built. It wraps
the log-record factory rather than a handler, so records of every logger (Prefect's included) are scrubbed
before any handler, including Prefect's API log handler, sees them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

MASK = "[REDACTED]"
_secrets: set[str] = set()
_installed = False


def redact(text: str) -> str:
    """`text` with every known secret replaced by `[REDACTED]`."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def install_redaction(secrets: Iterable[str]) -> None:
    """Scrub `secrets` (values shorter than 6 characters are ignored) from every future log record."""
    global _installed
    _secrets.update(s for s in secrets if len(s) >= 6)
    if _installed or not _secrets:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if not _secrets:
            return record
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            if redact(text) != text:
                record.exc_text = redact(text)
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
