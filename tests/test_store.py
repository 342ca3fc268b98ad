"""The store on SQLite and PostgreSQL: conditional transitions, audit, outbox, schema."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from bot.database import migrate
from bot.domain import Notice, State
from bot.store import Store, Transition
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
    assert [n.kind for n in store.due_notices(NOW)] == ["submitted", "denied"]


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
