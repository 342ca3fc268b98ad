"""The outbox worker: delivered once, retried with Retry-After or backoff, given up loudly.

A permanent failure is given up at once, and one audience never waits for another.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlmodel import Session, col, select

from bot.domain import Notice, State
from bot.outbox import DeliveryDeferred, DeliveryFailed, OutboxWorker
from bot.store import Audience, OutboxNotice, Store, Transition
from tests.conftest import FakeClock
from tests.factories import access_request


def test_delivers_due_notices_once(store: Store, clock: FakeClock) -> None:
    delivered: list[str] = []
    request = access_request(created_at=clock.now())
    store.insert(request, actor="U1", notice=Notice.SUBMITTED)
    worker = OutboxWorker(store, lambda n: delivered.append(n.kind), clock)
    assert worker.run_once() == 1
    assert worker.run_once() == 0
    assert delivered == ["submitted"]


def test_retry_after_is_honoured_then_delivered(store: Store, clock: FakeClock) -> None:
    attempts: list[OutboxNotice] = []

    def flaky(notice: OutboxNotice) -> None:
        attempts.append(notice)
        if len(attempts) == 1:
            raise DeliveryDeferred("ratelimited", retry_after=7)

    store.insert(access_request(created_at=clock.now()), actor="U1", notice=Notice.SUBMITTED)
    worker = OutboxWorker(store, flaky, clock)
    assert worker.run_once() == 0
    clock.advance(seconds=6)
    assert worker.run_once() == 0 and len(attempts) == 1  # not before Retry-After
    clock.advance(seconds=1)
    assert worker.run_once() == 1 and len(attempts) == 2


def test_backoff_grows_and_gives_up_after_max_attempts(store: Store, clock: FakeClock) -> None:
    calls: list[int] = []

    def down(notice: OutboxNotice) -> None:
        calls.append(notice.attempts)
        raise DeliveryDeferred("fatal_error")

    store.insert(access_request(created_at=clock.now()), actor="U1", notice=Notice.SUBMITTED)
    worker = OutboxWorker(store, down, clock, max_attempts=4)
    for _ in range(10):
        worker.run_once()
        clock.advance(seconds=60)
    assert calls == [0, 1, 2, 3]  # then it gave up (logged at ERROR) instead of looping forever
    assert store.due_notices(clock.now() + timedelta(days=1)) == []


def test_inactive_worker_delivers_nothing(store: Store, clock: FakeClock) -> None:
    store.insert(access_request(created_at=clock.now()), actor="U1", notice=Notice.SUBMITTED)
    worker = OutboxWorker(store, lambda n: None, clock)
    leading = False
    worker.may_deliver = lambda: leading  # a follower replica
    assert worker.run_once() == 0
    leading = True
    assert worker.run_once() == 1


def test_permanent_failure_is_logged_once_and_not_retried(
    store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    def gone(notice: OutboxNotice) -> None:
        calls.append(notice.attempts)
        raise DeliveryFailed("Slack said message_not_found")

    request = access_request(created_at=clock.now())
    store.insert(request, actor="U1", notice=Notice.SUBMITTED)
    worker = OutboxWorker(store, gone, clock)
    with caplog.at_level(logging.ERROR, logger="bot.outbox"):
        for _ in range(5):
            assert worker.run_once() == 0
            clock.advance(minutes=10)
    assert calls == [0]
    assert store.due_notices(clock.now() + timedelta(days=1)) == []
    [row] = rows_of(store, request.id)
    assert row.delivered_at is not None and row.last_error == "Slack said message_not_found"
    assert [r.levelno for r in caplog.records] == [logging.ERROR]
    assert "message_not_found" in caplog.records[0].getMessage()


def test_one_audience_failing_for_good_does_not_hold_back_the_other(
    store: Store, clock: FakeClock
) -> None:
    delivered: list[str] = []

    def channel_gone(notice: OutboxNotice) -> None:
        if notice.audience == Audience.CHANNEL:
            raise DeliveryFailed("Slack said is_archived")
        delivered.append(notice.kind)

    request = access_request(created_at=clock.now())
    store.insert(request, actor="U1", notice=None)
    store.transition(request.id, cancel(request.requester, clock))
    assert OutboxWorker(store, channel_gone, clock).run_once() == 1
    assert delivered == ["cancelled"]


def rows_of(store: Store, request_id: str) -> list[OutboxNotice]:
    query = select(OutboxNotice).where(col(OutboxNotice.request_id) == request_id)
    with Session(store.engine) as session:
        return list(session.exec(query))


def cancel(actor: str, clock: FakeClock) -> Transition:
    return Transition(
        to=State.CANCELLED,
        actor=actor,
        at=clock.now(),
        action="cancelled",
        changes={"ended_at": clock.now()},
        notice=Notice.CANCELLED,
    )
