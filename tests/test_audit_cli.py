"""`jitsudo-bot audit verify | export | REQUEST_ID` via bot.cli.main, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.cli import main
from bot.database import open_store
from bot.domain import Notice, State
from bot.store import Transition
from tests.factories import NOW, access_request


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only --config says which database; main() keeps pytest's log handler."""
    monkeypatch.setattr("bot.logs.configure_logging", lambda level="INFO": None)
    for name in ("JITSUDO_CONFIG", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> str:
    path = tmp_path / "jitsudo.yaml"
    path.write_text(f"database:\n  url: {database_url}\n")
    return str(path)


@pytest.fixture
def filled(database_url: str) -> list[str]:
    """Two requests, four events an hour apart (12:00 to 15:00 UTC); their IDs."""
    store = open_store(database_url)
    first, second = access_request(), access_request(created_at=NOW + timedelta(hours=2))
    store.insert(first, actor="U1", notice=Notice.SUBMITTED)
    store.transition(first.id, _approve(NOW + timedelta(hours=1)))
    store.insert(second, actor="U2", notice=Notice.SUBMITTED)
    store.transition(second.id, _approve(NOW + timedelta(hours=3)))
    store.engine.dispose()
    return [first.id, second.id]


def _approve(at: datetime) -> Transition:
    return Transition(
        to=State.APPROVED, actor="U7", at=at, action="approved", changes={"decided_by": "U7"}
    )


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _hashes(database_url: str) -> list[str]:
    store = open_store(database_url)
    try:
        return [event.hash for event in store.audit_trail()]
    finally:
        store.engine.dispose()


def test_verify_exits_0_with_a_one_line_summary(
    config: str, filled: list[str], database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(["audit", "verify", "--config", config], capsys)
    last = _hashes(database_url)[-1]
    assert (code, out) == (0, f"audit chain intact: 4 events, seq 1-4, last hash {last}\n")


def test_verify_exits_1_naming_the_first_changed_event(
    config: str, filled: list[str], database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE audit_events SET actor = 'U666' WHERE seq = 2"))
        connection.execute(sa.text("DELETE FROM audit_events WHERE seq = 3"))
    engine.dispose()
    code, out, _ = _run(["--config", config, "audit", "verify"], capsys)
    assert code == 1
    assert out == (
        f"audit chain broken at seq 2 ({filled[0]}, approved by U666 at "
        "2026-11-27T13:00:00.000000Z): the event was changed\n"
    )


def test_verify_names_a_removed_event(
    config: str, filled: list[str], database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM audit_events WHERE seq = 4"))
    engine.dispose()
    code, out, _ = _run(["--config", config, "audit", "verify"], capsys)
    assert (code, out) == (1, "audit chain broken at seq 4: event seq 4 is missing (removed)\n")


def test_export_jsonl_carries_seq_and_both_hashes(
    config: str, filled: list[str], database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(["--config", config, "audit", "export"], capsys)
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert [list(r) for r in records] == [
        ["seq", "at", "actor", "action", "request_id", "details", "prev_hash", "hash"]
    ] * 4
    assert [r["hash"] for r in records] == _hashes(database_url)
    assert [r["prev_hash"] for r in records[1:]] == [r["hash"] for r in records[:-1]]
    assert records[0]["prev_hash"] == "0" * 64
    assert [(r["seq"], r["action"], r["request_id"]) for r in records] == [
        (1, "submitted", filled[0]),
        (2, "approved", filled[0]),
        (3, "submitted", filled[1]),
        (4, "approved", filled[1]),
    ]
    assert json.loads(records[1]["details"]) == {"from": "pending", "to": "approved"}


def test_export_csv_has_a_header_and_the_same_values(
    config: str, filled: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, jsonl, _ = _run(["--config", config, "audit", "export", "--format", "jsonl"], capsys)
    code, out, _ = _run(["--config", config, "audit", "export", "--format", "csv"], capsys)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    expected = [{k: str(v) for k, v in json.loads(line).items()} for line in jsonl.splitlines()]
    assert rows == expected
    assert out.splitlines()[0] == "seq,at,actor,action,request_id,details,prev_hash,hash"


@pytest.mark.parametrize(
    "since",
    [
        "2026-11-27T14:00:00Z",
        "2026-11-27T14:00:00+00:00",
        "2026-11-27T15:30:00+01:30",
        "2026-11-27T14:00",
        "2026-11-27 14:00:00.000000",
        "20261127T140000Z",
    ],
)
def test_export_since_keeps_events_at_or_after_that_time(
    config: str, filled: list[str], since: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(["--config", config, "audit", "export", "--since", since], capsys)
    assert code == 0
    assert [json.loads(line)["seq"] for line in out.splitlines()] == [3, 4]


def test_export_since_a_date_means_midnight_utc(
    config: str, filled: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, same_day, _ = _run(["--config", config, "audit", "export", "--since", "2026-11-27"], capsys)
    _, next_day, _ = _run(["--config", config, "audit", "export", "--since", "2026-11-28"], capsys)
    assert (len(same_day.splitlines()), next_day) == (4, "")


@pytest.mark.parametrize(
    "since", ["yesterday", "2026-13-01", "27/11/2026", "", "0001-01-01T00:00:00+01:00"]
)
def test_a_bad_since_exits_2_saying_which_forms_work(
    config: str, since: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--config", config, "audit", "export", "--since", since])
    assert done.value.code == 2
    error = " ".join(capsys.readouterr().err.split())
    assert f"argument --since: {since!r} is not a time; use ISO 8601" in error
    assert "2026-11-27T12:00:00Z" in error


@pytest.mark.parametrize(
    "argv",
    [
        ["audit", "verify", "--since", "2026-11-27"],
        ["audit", "--format", "csv"],
        ["audit", "req_01J8KZ4Q2M3N5P6R7S8T9VWXYZ", "--format", "csv"],
    ],
)
def test_export_options_elsewhere_exit_2(
    config: str, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(["--config", config, *argv], capsys)
    assert (code, out) == (2, "")
    assert "--since and --format are options of `audit export`" in err


@pytest.mark.parametrize("target", ["verfy", "req_tooshort", "EXPORT"])
def test_an_unknown_audit_target_exits_2(
    config: str, target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--config", config, "audit", target])
    assert done.value.code == 2
    error = capsys.readouterr().err
    assert f"{target!r} is neither verify, export nor a request ID" in error


def test_audit_request_id_still_prints_that_requests_trail_in_any_case(
    config: str, filled: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(["--config", config, "audit", filled[1].lower()], capsys)
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [(e["request"], e["action"], e["actor"]) for e in lines] == [
        (filled[1], "submitted", "U2"),
        (filled[1], "approved", "U7"),
    ]
    assert lines[1]["details"] == {"from": "pending", "to": "approved"}
    code, out, _ = _run(["--config", config, "audit"], capsys)
    assert (code, len(out.splitlines())) == (0, 4)
