"""The store on SQLite and PostgreSQL: conditional transitions, audit, outbox, schema."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, col, select

from bot.database import MIGRATIONS, migrate
from bot.domain import Notice, State
from bot.store import OutboxNotice, Store, Transition, make_engine
from tests.factories import NOW, access_request


def _approve(actor: str) -> Transition:
    return Transition(
        to=State.APPROVED,
        actor=actor,
        at=NOW,
        action="approved",
        changes={"decided_by": actor, "decided_at": NOW},
    )


def test_round_trip_keeps_every_field_and_utc(store: Store) -> None:
    request = access_request(expires_at=NOW + timedelta(hours=1), extends="req_X", warned=True)
    store.insert(request, actor="U1", notice=Notice.SUBMITTED)
    loaded = store.get(request.id)
    assert loaded == request
    assert loaded is not None and loaded.created_at.tzinfo is not None


def test_transition_applies_only_from_the_expected_state(store: Store) -> None:
    request = access_request()
    store.insert(request, actor="U1", notice=None)
    moved = store.transition(request.id, _approve("U2"))
    assert moved is not None and moved.state is State.APPROVED and moved.decided_by == "U2"
    assert store.transition(request.id, _approve("U3")) is None
    final = store.get(request.id)
    assert final is not None and final.decided_by == "U2"


def test_transition_writes_audit_and_outbox_atomically(store: Store) -> None:
    request = access_request()
    store.insert(request, actor="U1", notice=Notice.SUBMITTED)
    move = Transition(
        to=State.DENIED,
        actor="U2",
        at=NOW,
        action="denied",
        changes={"decision_note": "no"},
        notice=Notice.DENIED,
    )
    store.transition(request.id, move)
    store.transition(request.id, move)  # loses: no second event or notice
    trail = store.audit_trail(request.id)
    assert [(e.actor, e.action) for e in trail] == [("U1", "submitted"), ("U2", "denied")]
    assert json.loads(trail[1].details) == {"from": "pending", "to": "denied"}
    assert [(n.kind, n.audience) for n in store.due_notices(NOW)] == [
        ("submitted", "channel"),
        ("denied", "channel"),
        ("denied", "dm"),
    ]


def test_twenty_concurrent_approvals_one_winner(store: Store) -> None:
    request = access_request()
    store.insert(request, actor="U1", notice=None)
    barrier = threading.Barrier(20)
    winners: list[str] = []

    def click(actor: str) -> None:
        barrier.wait()
        if store.transition(request.id, _approve(actor)) is not None:
            winners.append(actor)

    threads = [threading.Thread(target=click, args=(f"U{i}",)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    approvals = [e for e in store.audit_trail(request.id) if e.action == "approved"]
    assert len(approvals) == 1 and approvals[0].actor == winners[0]


def test_outbox_delivery_is_claimed_once_and_postponed(store: Store) -> None:
    request = access_request()
    store.insert(request, actor="U1", notice=Notice.SUBMITTED)
    [notice] = store.due_notices(NOW)
    assert notice.id is not None
    store.postpone(notice.id, until=NOW + timedelta(seconds=30), error="ratelimited")
    assert store.due_notices(NOW) == []
    [again] = store.due_notices(NOW + timedelta(seconds=30))
    assert again.attempts == 1 and again.last_error == "ratelimited"
    assert store.mark_delivered(notice.id, NOW) is True
    assert store.mark_delivered(notice.id, NOW) is False
    assert store.due_notices(NOW + timedelta(days=1)) == []


@pytest.mark.parametrize(
    ("kind", "audiences"),
    [
        (Notice.SUBMITTED, ["channel"]),
        (Notice.EXPIRY_WARNING, ["dm"]),
        (Notice.GRANT_DELAYED, ["channel"]),
        *[
            (kind, ["channel", "dm"])
            for kind in Notice
            if kind not in (Notice.SUBMITTED, Notice.EXPIRY_WARNING, Notice.GRANT_DELAYED)
        ],
    ],
)
def test_each_audience_gets_its_own_row(store: Store, kind: Notice, audiences: list[str]) -> None:
    request = access_request()
    store.insert(request, actor="U1", notice=kind)
    rows = store.due_notices(NOW)
    assert [n.audience for n in rows] == audiences
    assert {(n.kind, n.request_id) for n in rows} == {(kind, request.id)}


def test_give_up_ends_a_notice_once_and_keeps_why(store: Store) -> None:
    store.insert(access_request(), actor="U1", notice=Notice.SUBMITTED)
    [notice] = store.due_notices(NOW)
    assert notice.id is not None
    assert store.give_up(notice.id, at=NOW, error="Slack said message_not_found") is True
    assert store.give_up(notice.id, at=NOW, error="again") is False
    assert store.mark_delivered(notice.id, NOW) is False
    assert store.due_notices(NOW + timedelta(days=1)) == []
    [row] = _outbox_rows(store)
    assert row.last_error == "Slack said message_not_found" and row.attempts == 1


def test_migration_0003_splits_pending_notices_by_audience(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        _with_legacy_rows(engine)
        migrate(engine)
        rows = _outbox_rows(Store(engine))
    finally:
        engine.dispose()
    by_row = sorted((n.kind, n.audience, n.delivered_at is not None, n.attempts) for n in rows)
    assert by_row == [
        ("expired", "channel", False, 3),
        ("expired", "channel", True, 3),  # history: one row standing for both, not split
        ("expired", "dm", False, 3),
        ("expiry_warning", "dm", False, 3),
        ("submitted", "channel", False, 3),
    ]


def test_migration_0003_downgrade_merges_the_halves(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        _with_legacy_rows(engine)
        migrate(engine)
        _downgrade(engine, "0002")
        with engine.connect() as connection:
            kinds = connection.execute(
                sa.text("SELECT kind, delivered_at IS NOT NULL FROM outbox ORDER BY id")
            ).all()
    finally:
        engine.dispose()
    assert sorted((kind, bool(done)) for kind, done in kinds) == sorted(_LEGACY_ROWS)


_LEGACY_ROWS = [
    ("submitted", False),
    ("expired", False),
    ("expired", True),
    ("expiry_warning", False),
]
_LEGACY_INSERT = sa.text(
    "INSERT INTO outbox (request_id, kind, created_at, due_at, attempts, delivered_at)"
    " VALUES ('req_1', :kind, :at, :at, 3, :delivered_at)"
).bindparams(
    sa.bindparam("at", NOW, type_=sa.DateTime(timezone=True)),
    sa.bindparam("delivered_at", type_=sa.DateTime(timezone=True)),
)


def _with_legacy_rows(engine: Engine) -> None:
    """A database at 0002 holding notices written by the one-row-per-notice code."""
    migrate(engine, "0002")
    with engine.begin() as connection:
        for kind, delivered in _LEGACY_ROWS:
            done = NOW + timedelta(seconds=1) if delivered else None
            connection.execute(_LEGACY_INSERT, {"kind": kind, "delivered_at": done})


def _downgrade(engine: Engine, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def _outbox_rows(store: Store) -> list[OutboxNotice]:
    with Session(store.engine) as session:
        return list(session.exec(select(OutboxNotice).order_by(col(OutboxNotice.id))))


def test_find_filters(store: Store) -> None:
    old = access_request(created_at=NOW - timedelta(hours=2))
    active = access_request(
        state=State.ACTIVE, expires_at=NOW - timedelta(seconds=1), requester="U9"
    )
    store.insert(old, actor="U1", notice=None)
    store.insert(active, actor="U9", notice=None)
    assert [
        r.id for r in store.find(states=[State.PENDING], created_before=NOW - timedelta(hours=1))
    ] == [old.id]
    assert [r.id for r in store.find(states=[State.ACTIVE], expires_before=NOW)] == [active.id]
    assert [r.id for r in store.find(requester="U9")] == [active.id]


def test_update_fields_is_conditional(store: Store) -> None:
    request = access_request(state=State.ACTIVE)
    store.insert(request, actor="U1", notice=None)
    assert store.update_fields(
        request.id,
        expected=State.ACTIVE,
        changes={"warned": True},
        audit=("jitsudo", "warned", NOW),
        notice=Notice.EXPIRY_WARNING,
    )
    assert not store.update_fields(request.id, expected=State.PENDING, changes={"warned": False})
    loaded = store.get(request.id)
    assert loaded is not None and loaded.warned
    store.set_message(request.id, channel="C1", ts="1.2")
    assert store.message_of(request.id) == ("C1", "1.2")


def test_migrations_match_the_models_and_rerun(store: Store) -> None:
    migrate(store.engine)  # second run is a no-op
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert differences == []
