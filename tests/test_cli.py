"""`--config` before or after the verb, for every verb; after the verb wins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from bot.database import open_store
from bot.domain import Notice
from tests.factories import access_request

VERBS = [
    ["serve"],
    ["sweep"],
    ["db", "upgrade"],
    ["audit"],
    ["audit", "req_01J8KZ4Q2M3N5P6R7S8T9VWXYZ"],
]


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only --config says which file; main() keeps pytest's log handler."""
    monkeypatch.setattr("bot.logs.configure_logging", lambda *args, **kwargs: None)
    for name in ("JITSUDO_CONFIG", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


def _broken_config(tmp_path: Path, name: str) -> Path:
    """A file whose error message names it: max_duration `from-<name>`."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"providers:\n  kubernetes:\n    max_duration: from-{name}\n")
    return path


def _sqlite_config(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"database:\n  url: sqlite:///{tmp_path}/{name}.db\n")
    return path


@pytest.mark.parametrize("verb", VERBS, ids=" ".join)
@pytest.mark.parametrize("position", ["before", "after", "both"])
def test_every_verb_reads_config_before_or_after_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], verb: list[str], position: str
) -> None:
    """Nothing needs Slack: the config is refused, and its error says which file was read."""
    first, second = _broken_config(tmp_path, "first"), _broken_config(tmp_path, "second")
    argv = {
        "before": ["--config", str(second), *verb],
        "after": [*verb, "--config", str(second)],
        "both": ["--config", str(first), *verb, "--config", str(second)],
    }[position]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "from-second is not a duration" in error and "from-first" not in error


@pytest.mark.parametrize(
    "argv",
    [
        ["--config", "{a}", "db", "upgrade"],
        ["db", "upgrade", "--config", "{a}"],
        ["db", "--config", "{a}", "upgrade"],
        ["--config", "{b}", "db", "upgrade", "--config", "{a}"],
    ],
    ids=["before", "after", "between", "after-wins"],
)
def test_db_upgrade_creates_the_database_of_the_chosen_file(
    tmp_path: Path, argv: list[str]
) -> None:
    paths = {"a": _sqlite_config(tmp_path, "a"), "b": _sqlite_config(tmp_path, "b")}
    assert main([arg.format(**{k: str(v) for k, v in paths.items()}) for arg in argv]) == 0
    assert (tmp_path / "a.db").exists() and not (tmp_path / "b.db").exists()


def test_audit_with_an_id_reads_config_on_either_side(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(_sqlite_config(tmp_path, "a"))
    store = open_store(f"sqlite:///{tmp_path}/a.db")
    request = access_request()
    store.insert(request, actor="U1", notice=Notice.SUBMITTED)
    store.engine.dispose()
    for argv in (
        ["--config", config, "audit", request.id],
        ["audit", request.id, "--config", config],
        ["audit", "--config", config, request.id],
        ["audit", "--config", config],
    ):
        capsys.readouterr()
        assert main(argv) == 0
        [line] = capsys.readouterr().out.splitlines()
        assert json.loads(line)["request"] == request.id


@pytest.mark.parametrize("verb", VERBS[:-1], ids=" ".join)
def test_help_says_config_may_follow_the_verb_and_wins(
    capsys: pytest.CaptureFixture[str], verb: list[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main([*verb[:1], "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--config" in text and "wins" in text


def test_the_installed_console_script_takes_config_after_the_verb(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "jitsudo-bot"
    config = _sqlite_config(tmp_path, "a")
    env = {k: v for k, v in os.environ.items() if k not in ("JITSUDO_CONFIG", "DATABASE_URL")}
    done = subprocess.run(
        [str(script), "db", "upgrade", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "database is up to date" in done.stdout
    assert (tmp_path / "a.db").exists()
