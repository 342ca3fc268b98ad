"""Tokens never reach logs; the CLI fails clearly on bad config and runs its commands."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from bot.cli import main
from bot.logs import RedactingFilter, redact


@pytest.fixture(autouse=True)
def _keep_pytest_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """main() installs the production log handler; keep pytest's instead."""
    monkeypatch.setattr("bot.logs.configure_logging", lambda *args, **kwargs: None)


def test_tokens_are_redacted() -> None:
    text = "auth xoxb-123-456-abc and xapp-1-A0-xyz with Authorization: Bearer eyJhbGciOi.x.y"
    cleaned = redact(text)
    for secret in ("xoxb-123", "xapp-1-A0", "eyJhbGciOi"):
        assert secret not in cleaned


def test_filter_redacts_formatted_records() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "token=%s", ("xoxb-1-2-3",), None)
    RedactingFilter().filter(record)
    assert record.getMessage() == "token=[redacted]"


def test_bad_config_exits_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "jitsudo.yaml"
    path.write_text("providers:\n  kubernetes:\n    max_duration: soon\n")
    assert main(["--config", str(path), "db", "upgrade"]) == 2
    assert "providers.kubernetes.max_duration" in capsys.readouterr().err


def test_db_upgrade_and_audit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "jitsudo.yaml"
    path.write_text(f"database:\n  url: sqlite:///{tmp_path}/a.db\n")
    assert main(["--config", str(path), "db", "upgrade"]) == 0
    from bot.database import open_store
    from bot.domain import Notice
    from tests.factories import access_request

    store = open_store(f"sqlite:///{tmp_path}/a.db")
    request = access_request()
    store.insert(request, actor="U1", notice=Notice.SUBMITTED)
    capsys.readouterr()
    assert main(["--config", str(path), "audit", request.id]) == 0
    [line] = capsys.readouterr().out.splitlines()
    event = json.loads(line)
    assert (event["actor"], event["action"], event["request"]) == ("U1", "submitted", request.id)


def test_serve_refuses_to_start_without_its_secrets(tmp_path: Path) -> None:
    from bot.config import parse_settings
    from bot.runner import check_secrets

    http = parse_settings(
        {"slack": {"mode": "http", "approval_channel": "C1"}}, {"SLACK_BOT_TOKEN": "xoxb-1"}
    )
    with pytest.raises(SystemExit, match="SLACK_SIGNING_SECRET"):
        check_secrets(http)
    socket = parse_settings({"slack": {"approval_channel": "C1"}}, {})
    with pytest.raises(SystemExit, match=r"(?s)SLACK_BOT_TOKEN.*SLACK_APP_TOKEN"):
        check_secrets(socket)
    check_secrets(
        parse_settings(
            {"slack": {"approval_channel": "C1"}},
            {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"},
        )
    )
