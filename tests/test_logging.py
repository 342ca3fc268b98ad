"""The log format: JSON lines with context fields, console text, redaction in every field.

In-process: configure_logging writes to a StringIO here (the real process
writes to stderr; tests/test_observability_processes.py checks that).
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.cli import build_parser
from bot.logs import BODY_LOGGERS, CHATTY_LOGGERS, acting, choose_format, configure_logging
from tests.harness import APPROVAL_CHANNEL, APPROVER, running_bot, wait_until

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
LIBRARIES = ("slack_bolt", "slack_sdk", "apscheduler", "kubernetes", "urllib3", "waitress")
TOKENS = ("xoxb-1234-5678-SeCrEt", "eyJhbGciOiJIUzI1NiJ9.payload.sig")


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """What the root handler prints; the logging set-up is restored afterwards."""
    root = logging.getLogger()
    names = (*BODY_LOGGERS, *CHATTY_LOGGERS)
    saved = (root.handlers[:], root.level, {n: logging.getLogger(n).level for n in names})
    stream = io.StringIO()
    yield stream
    root.handlers[:], root.level = saved[0], saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_time_level_logger_message_and_the_context(logs: io.StringIO) -> None:
    configure_logging("INFO", "json", stream=logs)
    with acting(actor="UALICE"), acting(request_id="req_1", action="approve"):
        logging.getLogger("bot.test").warning("granted %s", "edit")
    logging.getLogger("waitress").info("outside any request")
    first, second = lines(logs)
    assert RFC3339_UTC.match(first["time"]), first["time"]
    assert first["level"] == "WARNING" and first["logger"] == "bot.test"
    assert first["message"] == "granted edit"
    assert (first["request_id"], first["actor"], first["action"]) == ("req_1", "UALICE", "approve")
    assert second["logger"] == "waitress"
    assert not {"request_id", "actor", "action"} & set(second)


def test_an_extra_field_is_printed_and_wins_over_the_context(logs: io.StringIO) -> None:
    configure_logging("INFO", "json", stream=logs)
    with acting(actor="UALICE"):
        logging.getLogger("bot.test").info("clicked", extra={"actor": "UBOB", "attempt": 2})
    [line] = lines(logs)
    assert line["actor"] == "UBOB" and line["attempt"] == 2


def test_json_mode_prints_no_token_in_the_message_the_traceback_or_an_extra(
    logs: io.StringIO,
) -> None:
    configure_logging("INFO", "json", stream=logs)
    log = logging.getLogger("bot.test")
    log.error("token %s and Authorization: Bearer %s", *TOKENS)
    try:
        raise RuntimeError(f"Slack refused {TOKENS[0]} (Authorization: Bearer {TOKENS[1]})")
    except RuntimeError:
        log.exception("call failed", extra={"header": f"Bearer {TOKENS[1]}"})
    text = logs.getvalue()
    for token in TOKENS:
        assert token not in text
    message, failure = lines(logs)
    assert message["message"] == "token [redacted] and Authorization: [redacted]"
    assert "RuntimeError: Slack refused [redacted]" in failure["exc_info"]
    assert failure["header"] == "[redacted]"


def test_console_mode_is_one_readable_line_with_the_context_and_no_token(
    logs: io.StringIO,
) -> None:
    configure_logging("INFO", "console", stream=logs)
    with acting(request_id="req_1", actor="UALICE"):
        logging.getLogger("bot.test").info("posted with %s", TOKENS[0])
    [line] = logs.getvalue().splitlines()
    assert line.endswith("INFO bot.test: posted with [redacted] [request_id=req_1 actor=UALICE]")
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_the_flag_wins_over_the_environment_and_json_is_the_default() -> None:
    assert choose_format(None, None) == ("json", None)
    assert choose_format(None, "console") == ("console", None)
    assert choose_format("json", "console") == ("json", None)
    assert choose_format(None, " Console ") == ("console", None)
    fmt, complaint = choose_format(None, "yaml")
    assert fmt == "json"
    assert complaint == "JITSUDO_LOG_FORMAT=yaml is not a log format (json, console); using json"


def test_the_flag_accepts_only_the_two_formats(capsys: pytest.CaptureFixture[str]) -> None:
    assert build_parser().parse_args(["--log-format", "console", "serve"]).log_format == "console"
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["--log-format", "yaml", "serve"])
    assert exit_.value.code == 2
    assert "--log-format: invalid choice: 'yaml'" in capsys.readouterr().err


def test_debug_keeps_the_body_printing_libraries_at_info(logs: io.StringIO) -> None:
    configure_logging("DEBUG", "json", stream=logs)
    assert logging.getLogger("bot.anything").isEnabledFor(logging.DEBUG)
    for name in ("slack_sdk.web.base_client", "slack_sdk.socket_mode.jitsudo", "slack_bolt.x"):
        assert not logging.getLogger(name).isEnabledFor(logging.DEBUG), name
    configure_logging("INFO", "json", stream=logs)
    assert not logging.getLogger("apscheduler.executors.default").isEnabledFor(logging.INFO)
    assert logging.getLogger("apscheduler.scheduler").isEnabledFor(logging.INFO)


def test_at_debug_a_slack_request_is_handled_without_printing_its_body(
    tmp_path: Path, logs: io.StringIO
) -> None:
    """Bolt itself logs middleware and listener names at DEBUG, never the body; slack_sdk's
    DEBUG lines would print the response_url and the outgoing message, so they stay off."""
    configure_logging("DEBUG", "json", stream=logs)
    with running_bot(tmp_path) as h:
        form = h.sender.command_form(
            "/jitsudo",
            "request --role edit --scope production --duration 30m --reason BODYMARKER",
            user="UREQ",
        )
        assert h.sender.send_form(form).status == 200
        wait_until(lambda: h.bot.store.find())
        [request] = h.bot.store.find()
        message = h.approval_message(request.id)
        h.sender.block_action(
            "approve", request.id, user=APPROVER, channel=APPROVAL_CHANNEL, message_ts=message["ts"]
        )
        wait_until(lambda: h.replies() and len(h.slack.calls_to("response_url")) >= 2)
    printed = lines(logs)
    assert any(p["logger"] == "bot.slack.bolt" and p["level"] == "DEBUG" for p in printed)
    text = logs.getvalue()
    for part in (
        "BODYMARKER",
        form["token"],
        form["trigger_id"],
        form["response_url"],
        "/response/",
    ):
        assert part not in text, part


def test_no_library_installs_a_handler_of_its_own(tmp_path: Path, logs: io.StringIO) -> None:
    """So every library line goes through the root handler, in the one format."""
    configure_logging("INFO", "json", stream=logs)
    with running_bot(tmp_path, timers=True) as h:
        h.request("request --role view --scope staging --duration 30m --reason handlers")
        wait_until(lambda: h.timers is not None and h.timers.leadership.holds())
        loggers = dict(logging.Logger.manager.loggerDict)
    ours = [
        (name, handler)
        for name, logger in loggers.items()
        if name.split(".")[0] in LIBRARIES and isinstance(logger, logging.Logger)
        for handler in logger.handlers
        if not isinstance(handler, logging.NullHandler)
    ]
    assert ours == []
    assert any(name.startswith("waitress") for name in loggers)
    assert {line["logger"] for line in lines(logs)} >= {"apscheduler.scheduler"}
