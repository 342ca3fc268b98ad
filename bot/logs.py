"""Logging set-up: one JSON object per line (or console text), context fields, redaction.

`configure_logging` (called once by bot.cli) puts one handler on the root
logger, so the bot's own lines and those of slack_bolt, slack_sdk, apscheduler,
kubernetes, urllib3 and waitress share one format. JSON is the default
(containers); `console` is for people (`--log-format console`,
JITSUDO_LOG_FORMAT=console). JSON fields: time (RFC3339 UTC), level, logger,
message, then request_id, actor and action when known, exc_info when there is
a traceback, and any `extra` a caller passed.

`acting(...)` and `@on_request(...)` set request_id, actor and action for every
line logged inside them (a ContextVar, so each thread and each request keeps its
own); the core uses them where it acts on a request, the Slack listeners for
the acting user.

Redaction: we never log secrets on purpose; RedactingFilter catches the
accidents (a library that logs a header, an exception that quotes a URL with a
token) in every field: the message, the traceback, the stack and any extra.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any, Concatenate, Literal, ParamSpec, TypeVar

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

_SECRET = re.compile(
    r"(xox[abposr]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+|(?i:bearer)\s+[A-Za-z0-9._~+/=-]+)"
)
LogFormat = Literal["json", "console"]
FORMATS: tuple[LogFormat, ...] = ("json", "console")
CONTEXT_FIELDS = ("request_id", "actor", "action")

# slack_sdk's DEBUG lines print whole request and response bodies: message texts,
# users' e-mail addresses from users.info, response_url capabilities and, in Socket
# Mode, every raw frame Slack sends. slack_bolt's internal loggers print event
# bodies at DEBUG. So these never go below INFO, whatever JITSUDO_LOG_LEVEL says.
BODY_LOGGERS = ("slack_sdk", "slack_bolt")
# APScheduler logs two INFO lines per job run, and the tick runs every second.
CHATTY_LOGGERS = ("apscheduler.executors",)

_context: ContextVar[dict[str, str] | None] = ContextVar("jitsudo_log_context", default=None)
_STANDARD = frozenset(RESERVED_ATTRS) | {"taskName"}
P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")


def redact(text: str) -> str:
    return _SECRET.sub("[redacted]", text)


# --- context ------------------------------------------------------------------


@contextmanager
def acting(
    *, request_id: str | None = None, actor: str | None = None, action: str | None = None
) -> Iterator[None]:
    """Every line logged in this block carries the fields given (outer ones stay)."""
    given = {"request_id": request_id, "actor": actor, "action": action}
    fields = {**(_context.get() or {}), **{k: v for k, v in given.items() if v}}
    token = _context.set(fields)
    try:
        yield
    finally:
        _context.reset(token)


def on_request(
    action: str,
) -> Callable[[Callable[Concatenate[S, str, P], R]], Callable[Concatenate[S, str, P], R]]:
    """Decorate a method whose first argument is a request ID: its lines carry both."""

    def decorate(
        method: Callable[Concatenate[S, str, P], R],
    ) -> Callable[Concatenate[S, str, P], R]:
        @functools.wraps(method)
        def run(self: S, request_id: str, /, *args: P.args, **kwargs: P.kwargs) -> R:
            with acting(request_id=request_id, action=action):
                return method(self, request_id, *args, **kwargs)

        return run

    return decorate


class ContextFilter(logging.Filter):
    """Copies request_id, actor and action from `acting` onto the record (an `extra` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_context.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


# --- redaction ----------------------------------------------------------------


class RedactingFilter(logging.Filter):
    """Masks tokens in every field a formatter may print.

    The traceback is formatted here, redacted into `exc_text`, and `exc_info`
    dropped, so that no formatter (ours or another handler's) prints it afresh.
    """

    _traceback = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = self._traceback.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and not isinstance(value, int | float | bool | None):
                setattr(record, key, redact(str(value)))
        return True


# --- formats ------------------------------------------------------------------


class JsonLines(JsonFormatter):
    """One JSON object per line: time, level, logger, message, then context and extras."""

    def __init__(self) -> None:
        super().__init__(
            ["levelname", "name", "message"],
            rename_fields={"levelname": "level", "name": "logger"},
            json_ensure_ascii=False,
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["time"] = rfc3339(record.created)
        super().add_fields(log_data, record, message_dict)


class ConsoleLines(logging.Formatter):
    """For people: `time LEVEL logger: message [request_id=… actor=… action=…]`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        known = [f"{key}={getattr(record, key)}" for key in CONTEXT_FIELDS if hasattr(record, key)]
        return f"{line} [{' '.join(known)}]" if known else line


def rfc3339(created: float) -> str:
    """Epoch seconds as RFC3339 UTC with milliseconds: 2026-05-04T12:00:00.123Z."""
    moment = datetime.fromtimestamp(created, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def choose_format(flag: str | None, env: str | None) -> tuple[LogFormat, str | None]:
    """--log-format wins over JITSUDO_LOG_FORMAT; json by default. Returns (format, complaint)."""
    wanted = (flag or env or "json").strip().lower()
    for known in FORMATS:
        if wanted == known:
            return known, None
    complaint = f"JITSUDO_LOG_FORMAT={wanted[:20]} is not a log format (json, console); using json"
    return "json", complaint


def configure_logging(
    level: str = "INFO", fmt: LogFormat = "json", *, stream: IO[str] | None = None
) -> None:
    """Install the one root handler (stderr unless `stream`) and the library levels."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonLines() if fmt == "json" else ConsoleLines())
    handler.addFilter(ContextFilter())
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
    for name in BODY_LOGGERS:
        logging.getLogger(name).setLevel(max(root.level, logging.INFO))
    for name in CHATTY_LOGGERS:
        quiet = root.level > logging.DEBUG
        logging.getLogger(name).setLevel(max(root.level, logging.WARNING) if quiet else root.level)
