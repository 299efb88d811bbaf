"""The one redaction of the project: secret values and URL credentials out of logs, messages, PR bodies.

`redact(text)` masks the secrets installed for this process (or the ones passed in) with `[REDACTED]`;
`redact_url(url)` masks a URL's password. `install_redaction` is called once per process at the
entry point (CLI commands, flow entry), after Settings is built: it wraps the log-record factory rather than a
handler, so records of every logger (Prefect's included) are scrubbed before any handler, including Prefect's
API log handler, sees them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "[REDACTED]"
# `scheme://user:password@` in free text (a remote URL in git's output, a Redis URL in an error).
_URL_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)
_secrets: set[str] = set()
_installed = False


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """`text` with every secret replaced by `[REDACTED]`, and credentials in URLs removed.

    Args:
        text: what to clean.
        secrets: the values to mask (default: those installed for this process); empty values are ignored.
    """
    for secret in _secrets if secrets is None else secrets:
        if secret and secret in text:
            text = text.replace(secret, MASK)
    return _URL_USERINFO.sub(r"\1", text)


def redact_url(url: str) -> str:
    """`url` with its password masked (`redis://app:pw@host/0` -> `redis://app:***@host/0`), safe to show."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else "***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


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
