"""The outbox worker: delivered once, retried with Retry-After or backoff, given up loudly."""

from __future__ import annotations

from datetime import timedelta

from bot.domain import Notice
from bot.outbox import DeliveryDeferred, OutboxWorker
from bot.store import OutboxNotice, Store
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
