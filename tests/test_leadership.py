"""One scheduler acts at a time: the PostgreSQL advisory lock, and two whole bots sharing it.

The issue: with several replicas sharing PostgreSQL only the leader runs jobs
and delivers notices; when the leader dies another takes over within one sweep
interval. With SQLite the bot runs as one replica, which always leads.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.database import open_store
from bot.domain import AccessRequest, ManagedBinding, State, Target
from bot.leader import LOCK_KEY, Leadership
from bot.outbox import OutboxWorker
from bot.providers.kubernetes import KubernetesProvider
from bot.scheduler import Timers
from bot.service import Draft
from bot.store import OutboxNotice, Transition, make_engine
from tests.conftest import FakeClock
from tests.factories import fake_service
from tests.fakes import FakeProvider
from tests.harness import (
    APPROVAL_CHANNEL,
    APPROVER,
    REQUESTER,
    Harness,
    _RunningBot,
    running_bot,
    wait_until,
)
from tests.subprocess_bot import poll, request_when

RBAC = "rbac.authorization.k8s.io/v1"
SWEEP_SECONDS = 2.0
TICK_SECONDS = 1.0

_LOCK_HOLDER = sa.text(
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND (classid::bigint << 32) + objid::bigint = :key"
)


def lock_holder(admin: Engine) -> int | None:
    """The backend pid holding the leadership lock in this database, if any."""
    with admin.connect() as connection:
        pid = connection.execute(_LOCK_HOLDER, {"key": LOCK_KEY}).scalar()
    return int(pid) if pid is not None else None


def kill_lock_holder(admin: Engine) -> int:
    """Terminate the leader's lock connection, as a crashed host or a cut network would."""
    pid = lock_holder(admin)
    assert pid is not None, "nobody holds the leadership lock"
    with admin.connect() as connection:
        # The timeout makes PostgreSQL wait until the backend is really gone (its locks freed).
        done = connection.execute(
            sa.text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid}
        ).scalar()
    assert done, f"backend {pid} did not terminate"
    wait_until(lambda: lock_holder(admin) != pid, timeout=5)
    return pid


@pytest.fixture
def engines(postgres_url: str) -> Iterator[Callable[[], Engine]]:
    """Engines on the test's PostgreSQL database, each its own pool, disposed after."""
    made: list[Engine] = []

    def make() -> Engine:
        made.append(make_engine(postgres_url))
        return made[-1]

    yield make
    for engine in made:
        engine.dispose()


@pytest.fixture
def admin(postgres_url: str) -> Iterator[Engine]:
    """A third connection, like an operator's psql session."""
    engine = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


# --- the lock itself ---------------------------------------------------------


def test_exactly_one_leads_and_the_follower_takes_over_when_the_leader_dies(
    engines: Callable[[], Engine], admin: Engine
) -> None:
    first, second = Leadership(engines()), Leadership(engines())
    try:
        results = [first.check(), second.check()]
        assert results.count(True) == 1
        leader, follower = (first, second) if results[0] else (second, first)
        for _ in range(3):  # leadership is sticky while the leader lives
            assert leader.check() and not follower.check()
        held_by = lock_holder(admin)
        assert held_by is not None

        kill_lock_holder(admin)
        assert follower.check()  # its next attempt: the lock is free, it takes it
        assert not leader.check()  # the old leader notices its dead connection, and follows
        assert leader.check() is False and follower.check() is True
        assert lock_holder(admin) not in (None, held_by)
    finally:
        first.release()
        second.release()


def test_a_leader_that_lost_its_connection_never_makes_two_leaders(
    engines: Callable[[], Engine], admin: Engine
) -> None:
    """If the old leader notices first it may re-take the free lock; still exactly one leads."""
    first, second = Leadership(engines()), Leadership(engines())
    try:
        assert first.check() and not second.check()
        kill_lock_holder(admin)
        again = first.check()  # notices the dead connection, then tries once for the free lock
        assert second.check() is (not again)
        assert [first.check(), second.check()].count(True) == 1
        assert lock_holder(admin) is not None
    finally:
        first.release()
        second.release()


def test_release_hands_over_at_once(engines: Callable[[], Engine], admin: Engine) -> None:
    first, second = Leadership(engines()), Leadership(engines())
    try:
        assert first.check() and not second.check()
        first.release()
        assert lock_holder(admin) is None
        assert second.check()
        assert not first.check()  # the former leader now follows
    finally:
        first.release()
        second.release()


def test_sqlite_runs_as_one_replica_that_always_leads(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/jitsudo.db")
    try:
        first, second = Leadership(engine), Leadership(engine)
        assert all(leadership.check() for leadership in (first, second, first))
        first.release()
        assert first.check()
    finally:
        engine.dispose()


# --- one job at a time within the leader ----------------------------------------


def test_a_tick_during_a_sweep_never_turns_an_expiry_into_drift(tmp_path: Path) -> None:
    """The next tick fires while a sweep is between listing bindings and checking drift.

    Were the tick to expire a grant in that window (delete, then record), the sweep
    would find an active request without a binding and report it deleted outside
    jitsudo. The timers never run the two at once.
    """
    store = open_store(f"sqlite:///{tmp_path}/jitsudo.db")
    provider, clock = FakeProvider(), FakeClock()
    service = fake_service(store, provider, clock)
    timers = Timers(
        service,
        leadership=Leadership(store.engine),
        outbox=OutboxWorker(store, lambda _: None, clock),
        sweep_interval=timedelta(seconds=30),
    )
    draft = Draft("UREQ", "alice", "edit", "production", timedelta(minutes=30), "scale")
    request = service.submit(draft)
    service.approve(request.id, approver="UAPPROVER")
    clock.advance(minutes=29, seconds=59.5)  # the sweep starts just before the expiry

    recorded = threading.Event()  # a tick's UPDATE is held back until the sweep is done
    transition = store.transition

    def late_in_the_tick(request_id: str, move: Transition) -> AccessRequest | None:
        if threading.current_thread().name == "tick":
            recorded.wait(5)
        return transition(request_id, move)

    store.transition = late_in_the_tick  # type: ignore[method-assign]
    list_managed = provider.list_managed

    def listing_while_the_next_tick_fires() -> Iterator[ManagedBinding]:
        clock.advance(seconds=1)
        tick = threading.Thread(target=timers.tick, name="tick")
        tick.start()
        tick.join(timeout=1)  # a tick that went ahead is now stuck before its UPDATE
        yield from list_managed()

    provider.list_managed = listing_while_the_next_tick_fires  # type: ignore[method-assign]
    try:
        timers.sweep()
        recorded.set()
        timers.tick()
        ended = store.get(request.id)
        assert ended is not None and ended.state is State.EXPIRED
        assert ended.cause == "expired"  # on time, not "deleted outside jitsudo"
        actions = [e.action for e in store.audit_trail(request.id)]
        assert "drifted" not in actions and actions.count("expired") == 1, actions
    finally:
        recorded.set()
        store.engine.dispose()


# --- two whole bots on one PostgreSQL ----------------------------------------


class Spy:
    """Records which bot deleted which grant's binding and delivered which notice."""

    def __init__(self) -> None:
        self.deleted: list[tuple[str, str]] = []
        self.delivered: list[tuple[str, int, str, str]] = []

    def watch(self, name: str, running: _RunningBot) -> None:
        provider: KubernetesProvider = running.bot.provider
        outbox: OutboxWorker = running.bot.outbox
        revoke, remove, deliver = provider.revoke, provider.remove, outbox.deliver

        def counting_revoke(request_id: str, target: Target) -> None:
            self.deleted.append((name, request_id))
            revoke(request_id, target)

        def counting_remove(binding: ManagedBinding) -> None:
            self.deleted.append((name, binding.request_id or binding.name))
            remove(binding)

        def counting_deliver(notice: OutboxNotice) -> None:
            deliver(notice)
            assert notice.id is not None
            self.delivered.append((name, notice.id, notice.kind, notice.request_id))

        provider.revoke = counting_revoke  # type: ignore[method-assign]
        provider.remove = counting_remove  # type: ignore[method-assign]
        outbox.deliver = counting_deliver

    def deleters(self) -> set[str]:
        return {name for name, _ in self.deleted}

    def deliverers(self) -> set[str]:
        return {name for name, *_ in self.delivered}


def grant(h: Harness, via: _RunningBot, duration: str) -> AccessRequest:
    """Request and approve through `via` (any replica serves Slack); returns the active grant."""
    sender = via.sender(h.slack)
    before = {r.id for r in via.bot.store.find()}
    text = f"request --role view --scope staging --duration {duration} --reason replicas"
    assert sender.command("/jitsudo", text, user=REQUESTER).status == 200
    request = poll(lambda: next((r for r in via.bot.store.find() if r.id not in before), None))
    message = h.approval_message(request.id)  # posted by the leader's outbox
    sender.block_action(
        "approve", request.id, user=APPROVER, channel=APPROVAL_CHANNEL, message_ts=message["ts"]
    )
    return request_when(via.bot.store, request.id, lambda r: r.state is State.ACTIVE)


def binding(h: Harness, request: AccessRequest) -> dict[str, Any] | None:
    name = f"jitsudo-{request.id.lower()}"
    return h.kube.get(RBAC, "rolebindings", name, namespace=request.namespace)


def revoked_by_deadline(h: Harness, request: AccessRequest) -> None:
    """Gone within one tick (plus a second of slack) of expires-at, as the timers promise."""
    assert request.expires_at is not None
    left = (request.expires_at - datetime.now(UTC)).total_seconds() + TICK_SECONDS + 1.0
    wait_until(lambda: binding(h, request) is None, timeout=max(left, 0.1))


def expiry_dms(h: Harness, request_id: str) -> list[dict[str, Any]]:
    return [
        p
        for p in h.dms_to(REQUESTER)
        if request_id in json.dumps(p) and "ended at" in json.dumps(p)
    ]


def die(running: _RunningBot, admin: Engine) -> None:
    """The leader's process dies: its threads stop, it unlocks nothing, its socket closes."""
    running.server.close()
    assert running.timers is not None
    running.timers.scheduler.shutdown(wait=True)  # not Timers.stop(): that would unlock
    running.bot.outbox.stop()
    kill_lock_holder(admin)  # what the kernel does to a dead process's connection
    running.bot.store.engine.dispose()


def drained(h: Harness, running: _RunningBot) -> bool:
    later = datetime.now(UTC) + timedelta(days=1)
    return not running.bot.store.due_notices(later)


def test_two_bots_one_leader_no_double_work_and_the_survivor_takes_over(
    tmp_path: Path, postgres_url: str, admin: Engine
) -> None:
    with running_bot(
        tmp_path, database=postgres_url, timers=True, scheduler={"sweep_interval": "2s"}
    ) as h:
        assert h.running is not None
        bots = {"one": h.running, "two": _RunningBot(h.settings, clock=None, timers=True)}
        try:
            spy = Spy()
            for name, running in bots.items():
                spy.watch(name, running)
            leading = poll(
                lambda: [n for n, r in bots.items() if r.bot.outbox.active.is_set()] or None
            )
            assert len(leading) == 1, leading
            leader_name = leading[0]
            (follower_name,) = set(bots) - {leader_name}
            leader, follower = bots[leader_name], bots[follower_name]

            grants = [grant(h, bots[name], "3s") for name in ("one", "two", "one", "two")]
            for request in grants:
                revoked_by_deadline(h, request)
            wait_until(lambda: all(expiry_dms(h, r.id) for r in grants), timeout=10)
            wait_until(lambda: drained(h, leader), timeout=10)

            for request in grants:
                stored = leader.bot.store.get(request.id)
                assert stored is not None and stored.state is State.EXPIRED
                actions = [e.action for e in leader.bot.store.audit_trail(request.id)]
                assert actions.count("expired") == 1, actions
                assert len(expiry_dms(h, request.id)) == 1
            # Only the leader deleted, and it deleted every grant. (It may DELETE a binding
            # twice in one sweep, the label pass then the record; NotFound is success.)
            assert spy.deleters() == {leader_name}
            assert {rid for _, rid in spy.deleted} == {r.id for r in grants}
            assert spy.deliverers() == {leader_name}
            notice_ids = [notice_id for _, notice_id, *_ in spy.delivered]
            assert len(notice_ids) == len(set(notice_ids))  # each notice delivered once
            assert not follower.bot.outbox.active.is_set()

            die(leader, admin)
            if h.running is leader:
                h.running = None  # already dead; nothing for the harness to stop
            # The promise: another replica leads within one sweep interval.
            wait_until(follower.bot.outbox.active.is_set, timeout=SWEEP_SECONDS)

            survivor_grant = grant(h, follower, "3s")
            revoked_by_deadline(h, survivor_grant)
            wait_until(lambda: expiry_dms(h, survivor_grant.id), timeout=10)
            assert spy.deleted[-1] == (follower_name, survivor_grant.id)
            assert follower_name in spy.deliverers()
        finally:
            for running in bots.values():
                timers = running.timers
                if running is not h.running and timers and timers.scheduler.running:
                    running.stop()
