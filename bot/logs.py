"""Logging set-up with a filter that masks anything shaped like a token.

We never log secrets on purpose; this catches the accidents (a library that
logs a request header, an exception that quotes a URL with a token).
"""

from __future__ import annotations

import logging
import re

_SECRET = re.compile(
    r"(xox[abposr]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+|(?i:bearer)\s+[A-Za-z0-9._~+/=-]+)"
)


def redact(text: str) -> str:
    return _SECRET.sub("[redacted]", text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    try:
        root.setLevel(level.upper())
    except ValueError:
        root.setLevel(logging.INFO)
        root.warning(
            "JITSUDO_LOG_LEVEL=%s is not a level (DEBUG, INFO, WARNING, ERROR); using INFO",
            level[:20],
        )
