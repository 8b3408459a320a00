"""Credentials never reach a log line: a logging filter that redacts them.

websockets logs every handshake header at DEBUG (``> Authorization: Bearer sk-...``), and error
messages may quote a URL whose query carries a key (Azure's ``api-key=``). The filter is
installed on the client's logger and on the logger websockets uses for our connections, and
rewrites each record's final text, so no formatter or handler ever sees the secret.
"""

from __future__ import annotations

import logging
import re

__all__ = ["RedactingFilter", "install_redaction", "redact"]

_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(authorization\s*[:=]\s*(?:bearer|basic|token)?\s*)[^\s'\",]+"), r"\1***"),
    (re.compile(r"(?i)\b(api[-_]key\s*[:=]\s*)[^\s'\",&]+"), r"\1***"),
    (
        re.compile(r"(?i)([?&](?:api[-_]?key|key|token|access_token|client_secret)=)[^&\s'\"]+"),
        r"\1***",
    ),
    (re.compile(r"\b(sk-|ek_|rk-)[A-Za-z0-9_\-]{6,}"), r"\1***"),
    (re.compile(r"(openai-insecure-api-key\.)[^\s,'\"]+"), r"\1***"),
)


def redact(text: str) -> str:
    """``text`` with API keys, bearer tokens and key-bearing query parameters masked."""
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites a record's message (arguments merged) when it holds a credential."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to logging's own error path
            return True
        clean = redact(message)
        if clean != message:
            record.msg = clean
            record.args = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install_redaction(logger: logging.Logger) -> None:
    """Add the filter to ``logger`` once."""
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
