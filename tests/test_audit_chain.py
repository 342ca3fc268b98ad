"""The audit log's hash chain on SQLite and PostgreSQL: intact, tampered, migrated, concurrent.

Tampering is done the way an attacker with database access would: plain SQL
on the tables, sometimes recomputing hashes with the published recipe.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from collections import Counter
from datetime import timedelta, timezone
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot import audit, auditlog
from bot.database import MIGRATIONS, migrate
from bot.domain import Notice, State, new_request_id
from bot.store import AuditEvent, Store, Transition, make_engine
from bot.tables import AuditHead
from tests.factories import NOW, access_request

ROOT = Path(__file__).parent.parent
EVENTS = sa.table(
    "audit_events",
    sa.column("id", sa.Integer()),
    sa.column("seq", sa.BigInteger()),
    sa.column("at", sa.DateTime(timezone=True)),
    sa.column("actor", sa.String()),
    sa.column("action", sa.String()),
    sa.column("request_id", sa.String()),
    sa.column("details", sa.String()),
    sa.column("prev_hash", sa.String()),
    sa.column("hash", sa.String()),
)


def _history(store: Store) -> list[AuditEvent]:
    """Seven events by every writing path: insert, transition, update_fields."""
    first, second, third = access_request(), access_request(requester="U2"), access_request()
    store.insert(first, actor="U1", notice=Notice.SUBMITTED)
    store.transition(first.id, _move(State.APPROVED, "approved", actor="U7", minutes=1))
    store.insert(second, actor="U2", notice=Notice.SUBMITTED, max_pending=5)
    store.transition(second.id, _move(State.DENIED, "denied", actor="U7", minutes=2))
    store.insert(third, actor="U1", notice=None)
    store.transition(first.id, _move(State.ACTIVE, "granted", actor="jitsudo", minutes=3))
    store.update_fields(
        first.id,
        expected=State.ACTIVE,
        changes={"warned": True},
        audit=("jitsudo", "expiry_warning", NOW + timedelta(minutes=4)),
    )
    events = _events(store.engine)
    assert len(events) == 7
    return events


def _move(to: State, action: str, *, actor: str, minutes: int) -> Transition:
    at = NOW + timedelta(minutes=minutes)
    return Transition(to=to, actor=actor, at=at, action=action, changes={"decided_at": at})


def _events(engine: Engine) -> list[AuditEvent]:
    with Session(engine) as session:
        return list(session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))))


def _sql(engine: Engine, statement: Any) -> None:
    with engine.begin() as connection:
        connection.execute(statement)


def _where(seq: int) -> Any:
    return EVENTS.c.seq == seq


def _broken(store: Store) -> audit.Break:
    verdict = audit.verify(store.engine)
    assert verdict.broken is not None, verdict.line
    return verdict.broken


def _reseal(engine: Engine, seq: int) -> None:
    """What an attacker who knows the recipe does: recompute the stored hash of `seq`."""
    [event] = [e for e in _events(engine) if e.seq == seq]
    _sql(engine, sa.update(EVENTS).where(_where(seq)).values(hash=auditlog.digest(event)))


def _renumber(engine: Engine, *, after: int, by: int) -> None:
    """Move every event after `after` by `by` positions, one row at a time (seq is unique)."""
    seqs = [e.seq for e in _events(engine) if e.seq > after]
    for seq in sorted(seqs, reverse=by > 0):
        _sql(engine, sa.update(EVENTS).where(_where(seq)).values(seq=seq + by))


def _intruder(*, seq: int, prev_hash: str, sealed: bool = True) -> dict[str, Any]:
    values: dict[str, Any] = {
        "seq": seq,
        "at": NOW + timedelta(minutes=2, seconds=30),
        "actor": "U666",
        "action": "approved",
        "request_id": new_request_id(),
        "details": '{"from": "pending", "to": "approved"}',
        "prev_hash": prev_hash,
    }
    values["hash"] = auditlog.seal(**values) if sealed else "f" * 64
    return values


# --- an intact chain ------------------------------------------------------------------


def test_a_whole_chain_verifies(store: Store) -> None:
    events = _history(store)
    verdict = audit.verify(store.engine)
    assert verdict.broken is None
    assert verdict.line == f"audit chain intact: 7 events, seq 1-7, last hash {events[-1].hash}"
    assert [e.seq for e in events] == list(range(1, 8))
    assert events[0].prev_hash == auditlog.GENESIS
    assert all(b.prev_hash == a.hash for a, b in pairwise(events))
    assert all(e.hash == auditlog.digest(e) for e in events)
    assert len({e.hash for e in events}) == 7
    head = auditlog.head(store.engine)
    assert head is not None and (head.seq, head.hash) == (7, events[-1].hash)


def test_an_empty_chain_verifies(store: Store) -> None:
    verdict = audit.verify(store.engine)
    assert (verdict.broken, verdict.line) == (None, "audit chain intact: no events yet")


def test_the_export_lets_anyone_recheck_every_hash(store: Store) -> None:
    """The README's recipe, written here without the bot's code: drop hash, add v=1, sha256."""
    _history(store)
    out = io.StringIO()
    audit.export(auditlog.events(store.engine), output="jsonl", out=out)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    previous = "0" * 64
    for record in records:
        hashed = {k: v for k, v in record.items() if k != "hash"} | {"v": 1}
        text = json.dumps(hashed, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        assert hashlib.sha256(text.encode("ascii")).hexdigest() == record["hash"]
        assert record["prev_hash"] == previous
        previous = record["hash"]
    assert [r["seq"] for r in records] == list(range(1, 8))
    assert records[1]["at"] == "2026-11-27T12:01:00.000000Z"


def test_the_encoding_has_one_text_per_instant_and_types_its_fields() -> None:
    fields: dict[str, Any] = {
        "seq": 1,
        "at": NOW,
        "actor": "U1",
        "action": "submitted",
        "request_id": "req_1",
        "details": "{}",
        "prev_hash": auditlog.GENESIS,
    }
    elsewhere = NOW.astimezone(timezone(timedelta(hours=2)))
    assert auditlog.seal(**fields) == auditlog.seal(**{**fields, "at": elsewhere})
    assert auditlog.seal(**fields) != auditlog.seal(**{**fields, "at": NOW + timedelta(0, 0, 1)})
    # Moving text from one field to the next changes the hash: fields are delimited.
    assert auditlog.seal(**fields) != auditlog.seal(
        **{**fields, "actor": "U1s", "action": "ubmitted"}
    )
    with pytest.raises(TypeError, match="seq must be an int"):
        auditlog.seal(**{**fields, "seq": "1"})
    with pytest.raises(TypeError, match="actor must be a string"):
        auditlog.seal(**{**fields, "actor": 1})


# --- a changed event ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("actor", "U666"),
        ("details", '{"from": "pending", "to": "approved", "note": "fine"}'),
        ("at", NOW + timedelta(minutes=2, microseconds=1)),  # one microsecond is enough
        ("action", "cancelled"),
        ("request_id", "req_01J8KZ4Q2M3N5P6R7S8T9VWXYZ"),
        ("prev_hash", "a" * 64),
    ],
)
def test_a_changed_field_is_caught_and_the_event_named(
    store: Store, field: str, value: Any
) -> None:
    _history(store)
    _sql(store.engine, sa.update(EVENTS).where(_where(4)).values(**{field: value}))
    verdict = audit.verify(store.engine)
    assert verdict.broken is not None
    assert (verdict.broken.kind, verdict.broken.seq) == ("changed", 4)
    [event] = [e for e in _events(store.engine) if e.seq == 4]
    assert verdict.line == (
        f"audit chain broken at seq 4 ({event.request_id}, {event.action} by {event.actor}"
        f" at {auditlog.utc_text(event.at)}): the event was changed"
    )


def test_a_changed_event_with_its_hash_recomputed_is_named(store: Store) -> None:
    _history(store)
    _sql(store.engine, sa.update(EVENTS).where(_where(2)).values(actor="U666"))
    _reseal(store.engine, 2)
    broken = _broken(store)
    assert (broken.kind, broken.seq) == ("recomputed", 2)
    assert "U666" in broken.message and "seq 3 links to a different hash" in broken.message


def test_the_last_event_changed_and_rehashed_is_caught_by_the_head(store: Store) -> None:
    _history(store)
    _sql(store.engine, sa.update(EVENTS).where(_where(7)).values(actor="U666"))
    _reseal(store.engine, 7)
    broken = _broken(store)
    assert (broken.kind, broken.seq) == ("recomputed", 7)
    assert "the audit head records a different hash" in broken.message


# --- a removed event ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("removed", "message"),
    [
        ([1], "event seq 1 is missing (removed)"),
        ([4], "event seq 4 is missing (removed)"),
        ([4, 5], "events seq 4-5 are missing (removed)"),
        ([7], "event seq 7 is missing (removed)"),  # the last: only the head knows
        ([6, 7], "events seq 6-7 are missing (removed)"),
    ],
)
def test_a_removed_event_is_caught_and_named(
    store: Store, removed: list[int], message: str
) -> None:
    _history(store)
    _sql(store.engine, sa.delete(EVENTS).where(EVENTS.c.seq.in_(removed)))
    verdict = audit.verify(store.engine)
    assert verdict.broken is not None and verdict.broken.kind == "removed"
    assert verdict.line == f"audit chain broken at seq {removed[0]}: {message}"


def test_a_removed_event_is_named_even_when_the_rest_were_renumbered(store: Store) -> None:
    _history(store)
    _sql(store.engine, sa.delete(EVENTS).where(_where(3)))
    _renumber(store.engine, after=3, by=-1)
    broken = _broken(store)
    assert (broken.kind, broken.seq) == ("removed", 3)
    assert broken.message.endswith(
        "event seq 3 is missing (removed; the events after it were renumbered)"
    )


def test_a_removed_head_is_reported(store: Store) -> None:
    _history(store)
    _sql(store.engine, sa.delete(AuditHead.__table__))  # type: ignore[attr-defined]
    verdict = audit.verify(store.engine)
    assert verdict.line == "audit chain broken: the audit_head row is missing (removed)"


# --- an inserted event ----------------------------------------------------------------


def test_an_event_appended_past_the_head_is_caught_even_when_perfectly_sealed(
    store: Store,
) -> None:
    events = _history(store)
    forged = _intruder(seq=8, prev_hash=events[-1].hash)
    _sql(store.engine, sa.insert(EVENTS).values(**forged))
    broken = _broken(store)
    assert (broken.kind, broken.seq) == ("inserted", 8)
    assert broken.message.endswith("event at position 8 was inserted")
    assert forged["request_id"] in broken.message


@pytest.mark.parametrize("sealed", [True, False], ids=["sealed", "made-up-hash"])
def test_an_event_inserted_in_the_middle_is_caught_and_named(store: Store, sealed: bool) -> None:
    events = _history(store)
    _renumber(store.engine, after=3, by=1)
    forged = _intruder(seq=4, prev_hash=events[2].hash, sealed=sealed)
    _sql(store.engine, sa.insert(EVENTS).values(**forged))
    broken = _broken(store)
    assert (broken.kind, broken.seq) == ("inserted", 4)
    assert forged["request_id"] in broken.message
    assert broken.message.endswith("event at position 4 was inserted")


def test_an_inserted_event_with_the_later_ones_resealed_in_place_is_named(store: Store) -> None:
    """Renumbered and resealed at their new positions, the later events still link past it."""
    events = _history(store)
    _renumber(store.engine, after=3, by=1)
    forged = _intruder(seq=4, prev_hash=events[2].hash)
    _sql(store.engine, sa.insert(EVENTS).values(**forged))
    for seq in range(5, 9):
        _reseal(store.engine, seq)
    broken = _broken(store)
    assert (broken.kind, broken.seq) == ("inserted", 4)
    assert forged["request_id"] in broken.message


def test_an_inserted_event_with_the_next_one_relinked_is_named(store: Store) -> None:
    """The attacker also points the next event at the intruder and reseals it."""
    events = _history(store)
    _renumber(store.engine, after=3, by=1)
    forged = _intruder(seq=4, prev_hash=events[2].hash)
    _sql(store.engine, sa.insert(EVENTS).values(**forged))
    _sql(store.engine, sa.update(EVENTS).where(_where(5)).values(prev_hash=forged["hash"]))
    _reseal(store.engine, 5)
    broken = _broken(store)
    # Seq 4 (the intruder) and seq 5 (relinked, resealed) are consistent; seq 6
    # still carries its hash from position 5, so the shift shows there, and the
    # first position verify can prove is 5, one after the real intrusion.
    assert (broken.kind, broken.seq) == ("inserted", 5)


def test_an_event_before_the_first_is_caught(store: Store) -> None:
    _history(store)
    _sql(store.engine, sa.insert(EVENTS).values(**_intruder(seq=0, prev_hash=auditlog.GENESIS)))
    broken = _broken(store)
    assert (broken.kind, broken.seq) == ("inserted", 0)


def test_rewriting_everything_after_an_event_is_still_caught_by_the_head(store: Store) -> None:
    """Known limit: a consistent rewrite of the tail is caught at the end, not where it began."""
    events = _history(store)
    _renumber(store.engine, after=3, by=1)
    _sql(store.engine, sa.insert(EVENTS).values(**_intruder(seq=4, prev_hash=events[2].hash)))
    for seq in range(5, 9):
        [previous] = [e for e in _events(store.engine) if e.seq == seq - 1]
        _sql(store.engine, sa.update(EVENTS).where(_where(seq)).values(prev_hash=previous.hash))
        _reseal(store.engine, seq)
    assert audit.verify(store.engine).broken is not None


# --- the migration --------------------------------------------------------------------

_OLD_INSERT = sa.text(
    "INSERT INTO audit_events (id, at, actor, action, request_id, details)"
    " VALUES (:id, :at, :actor, :action, :request_id, :details)"
).bindparams(sa.bindparam("at", type_=sa.DateTime(timezone=True)))


def test_migration_0004_chains_the_events_written_before_it(database_url: str) -> None:
    """Events written by the old code (ids with gaps, as rolled-back sequences leave) verify."""
    engine = make_engine(database_url)
    try:
        migrate(engine, "0003")
        old = [(2, "U1", "submitted"), (3, "U7", "approved"), (9, "U2", "submitted")]
        with engine.begin() as connection:
            for minute, (row_id, actor, action) in enumerate(old):
                connection.execute(
                    _OLD_INSERT,
                    {
                        "id": row_id,
                        "at": NOW + timedelta(minutes=minute, microseconds=123456),
                        "actor": actor,
                        "action": action,
                        "request_id": "req_01J8KZ4Q2M3N5P6R7S8T9VWXYZ",
                        "details": json.dumps({"n": minute}),
                    },
                )
        migrate(engine)
        store = Store(engine)
        events = _events(engine)
        assert [(e.id, e.seq, e.actor) for e in events] == [
            (2, 1, "U1"),
            (3, 2, "U7"),
            (9, 3, "U2"),
        ]
        assert audit.verify(engine).line.startswith("audit chain intact: 3 events, seq 1-3,")
        store.insert(access_request(), actor="U5", notice=None)  # the chain goes on from 3
        assert audit.verify(engine).line.startswith("audit chain intact: 4 events, seq 1-4,")
        _sql(engine, sa.update(EVENTS).where(_where(2)).values(actor="U8"))
        assert _broken(store).seq == 2
    finally:
        engine.dispose()


def test_migration_0004_downgrades_and_upgrades_again(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine)
        _history(Store(engine))
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0003")
        with engine.connect() as connection:
            assert "audit_head" not in sa.inspect(connection).get_table_names()
        migrate(engine)
        assert audit.verify(engine).line.startswith("audit chain intact: 7 events")
    finally:
        engine.dispose()


# --- concurrency: two processes -------------------------------------------------------


def test_two_processes_writing_at_once_keep_one_whole_chain(store: Store) -> None:
    """Two real processes, three threads each, on one database: one chain, every event once."""
    url = store.engine.url.render_as_string(hide_password=False)
    rounds, threads = 25, 3
    writers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.audit_writer", url, name, str(rounds), str(threads)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("alpha", "beta")
    ]
    try:
        for writer in writers:
            assert writer.stdout is not None
            assert writer.stdout.readline().strip() == "ready", writer.stderr
        for writer in writers:  # both go at once
            assert writer.stdin is not None
            writer.stdin.write("go\n")
            writer.stdin.flush()
        results = [writer.communicate(timeout=240) for writer in writers]
    finally:
        for writer in writers:
            writer.kill()
    for writer, (_, errors) in zip(writers, results, strict=True):
        assert writer.returncode == 0, errors[-3000:]
    finished = [line for out, _ in results for line in out.split()]
    assert len(finished) == len(set(finished)) == 2 * rounds * threads

    verdict = audit.verify(store.engine)
    total = 3 * len(finished)
    assert verdict.broken is None, verdict.line
    assert verdict.line.startswith(f"audit chain intact: {total} events, seq 1-{total},")
    events = _events(store.engine)
    assert [e.seq for e in events] == list(range(1, total + 1))
    per_request = Counter((e.request_id, e.action) for e in events)
    assert set(per_request.values()) == {1}
    assert {r for r, _ in per_request} == set(finished)
    # The two processes really interleaved: the chain switches writer many times.
    writers_in_order = [e.actor.split("-")[0] for e in events]
    switches = sum(a != b for a, b in pairwise(writers_in_order))
    assert switches > 1, "the writers ran one after the other; nothing was concurrent"
