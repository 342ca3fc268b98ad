"""A first run that explains itself: `jitsudo-bot serve` names every missing piece at once.

The real console script runs as a new user would run it (`make run` is
`jitsudo-bot serve`): in a directory of its own, with no SLACK_*, JITSUDO_CONFIG
or DATABASE_URL in the environment. Each report must list all the gaps with
their fixes, exit 2, print no traceback and start nothing (no database file).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import parse_settings
from bot.firstrun import setup_gaps, setup_report

SCRIPT = Path(sys.executable).parent / "jitsudo-bot"
EXAMPLE = Path(__file__).parent.parent / "jitsudo.example.yaml"
LOAD_ENV = "set -a; . ./.env; set +a"


def serve(directory: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`jitsudo-bot serve` in `directory` with a clean environment plus `env`."""
    clean = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("SLACK_") and name not in ("JITSUDO_CONFIG", "DATABASE_URL")
    }
    return subprocess.run(
        [str(SCRIPT), "serve"],
        cwd=directory,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def refused(done: subprocess.CompletedProcess[str], directory: Path) -> str:
    """The report of a refused start (exit 2, no traceback, nothing started), unwrapped."""
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert not list(directory.glob("*.db")), "serve started something before refusing"
    return " ".join(done.stderr.split())


def example_with(directory: Path, *, mode: str) -> None:
    """The example config with real-looking channel and approver IDs and the given mode."""
    text = EXAMPLE.read_text().replace("C0123456789", "C0REALCHAN").replace("U0123456789", "UREAL")
    (directory / "jitsudo.yaml").write_text(text.replace("mode: socket", f"mode: {mode}"))


def test_a_fresh_directory_gets_every_piece_and_its_fix_at_once(tmp_path: Path) -> None:
    report = refused(serve(tmp_path), tmp_path)
    assert "cannot start: 5 things are missing" in report
    assert "The config file jitsudo.yaml does not exist" in report
    assert "SLACK_BOT_TOKEN is not set" in report and "xoxb-" in report
    # no config, so no mode: what each mode needs
    assert "slack.mode: socket (the default) needs SLACK_APP_TOKEN" in report
    assert "slack.mode: http needs SLACK_SIGNING_SECRET" in report
    assert "slack.approval_channel" in report and "C0123456789 is a placeholder" in report
    assert "slack.approvers" in report and "U0123456789 is a placeholder" in report
    assert ".env.example .env" in report and LOAD_ENV in report
    assert report.count("Fix: ") == 5

    # The printed fix works as printed, from wherever the user stands.
    copy = re.search(r"Fix: (cp \S+ jitsudo\.yaml)", report)
    assert copy, report
    subprocess.run(shlex.split(copy.group(1)), cwd=tmp_path, check=True)
    assert (tmp_path / "jitsudo.yaml").read_text() == EXAMPLE.read_text()


def test_with_the_example_copied_the_mode_comes_from_it(tmp_path: Path) -> None:
    (tmp_path / "jitsudo.yaml").write_text(EXAMPLE.read_text())
    (tmp_path / ".env").write_text("SLACK_BOT_TOKEN=xoxb-in-the-file-only\n")
    report = refused(serve(tmp_path), tmp_path)
    assert "cannot start: 4 things are missing" in report
    assert "config file" not in report
    assert "SLACK_BOT_TOKEN is not set" in report
    assert "SLACK_APP_TOKEN is not set, and slack.mode is socket (Socket Mode)" in report
    assert "SLACK_SIGNING_SECRET" not in report  # Socket Mode does not need it
    assert "slack.approval_channel is the example's placeholder C0123456789" in report
    assert "slack.approvers holds the example's placeholder U0123456789" in report
    # .env is there but not loaded: say exactly that
    assert "./.env exists: fill in the values named above, then load it" in report
    assert LOAD_ENV in report
    assert "xoxb-in-the-file-only" not in report


@pytest.mark.parametrize(
    ("mode", "given", "missing", "switch"),
    [
        ("socket", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "slack.mode: http"),
        ("http", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "slack.mode: socket"),
    ],
)
def test_tokens_for_the_wrong_mode_name_the_right_one_and_the_switch(
    tmp_path: Path, mode: str, given: str, missing: str, switch: str
) -> None:
    example_with(tmp_path, mode=mode)
    env = {"SLACK_BOT_TOKEN": "xoxb-1-secret-bot", given: "xapp-1-secret-value"}
    report = refused(serve(tmp_path, **env), tmp_path)
    assert "cannot start: 1 thing is missing" in report
    assert f"{missing} is not set, and slack.mode is {mode}" in report
    assert f"{given} is set, but only" in report and f"set {switch} in jitsudo.yaml" in report
    assert LOAD_ENV in report
    assert "secret-value" not in report and "secret-bot" not in report


def test_a_broken_config_is_reported_with_the_missing_tokens_but_no_guesses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.logs.configure_logging", lambda level="INFO": None)
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "JITSUDO_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "bad.yaml"
    config.write_text("slack:\n  approval_chanel: C1\n")
    assert main(["serve", "--config", str(config)]) == 2
    report = " ".join(capsys.readouterr().err.split())
    assert f"{config} cannot be used" in report and "slack.approval_chanel: unknown key" in report
    assert "SLACK_BOT_TOKEN is not set" in report
    assert "Neither SLACK_APP_TOKEN nor SLACK_SIGNING_SECRET" in report
    assert "placeholder" not in report  # the file may set them; it could not be read


def test_a_complete_set_up_has_no_gaps() -> None:
    settings = parse_settings(
        {"slack": {"approval_channel": "C0REAL", "approvers": ["UREAL"]}},
        {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"},
    )
    assert setup_gaps(settings.slack, settings.secrets) == []
    assert setup_report([]) == ""
