"""One scheduler acts at a time: the PostgreSQL advisory lock, and two whole bots sharing it.

The issue: with several replicas sharing PostgreSQL only the leader runs jobs
and delivers notices; when the leader dies another takes over within one sweep
interval. With SQLite the bot runs as one replica, which always leads.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.database import open_store
from bot.domain import AccessRequest, ManagedBinding, State, Target
from bot.leader import Leadership
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
LEASE_SECONDS = 3.0

# --- the lease itself ----------------------------------------------------------


class FrozenClock:
    """A monotonic clock the test moves: a frozen process sees time jump when it wakes."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


def lease_row(engine: Engine) -> tuple[str, int, float]:
    with engine.connect() as connection:
        row = connection.execute(
            sa.text("SELECT holder, token, expires_epoch FROM leases WHERE name = 'scheduler'")
        ).one()
    return str(row[0]), int(row[1]), float(row[2])


@pytest.fixture(params=["sqlite", "postgresql"])
def lease_engines(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Engine]]:
    """Engines on one database (a fresh one per test), each its own pool, disposed after."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/jitsudo.db"
    else:
        url = request.getfixturevalue("postgres_url")
    open_store(url).engine.dispose()  # migrated: the leases table exists
    made: list[Engine] = []

    def make() -> Engine:
        made.append(make_engine(url))
        return made[-1]

    yield make
    for engine in made:
        engine.dispose()


def test_exactly_one_leads_and_a_silent_leader_loses_the_lease(
    lease_engines: Callable[[], Engine],
) -> None:
    lease = timedelta(seconds=1)
    clock = FrozenClock()
    first = Leadership(lease_engines(), lease=lease, holder="first", monotonic=clock)
    second = Leadership(lease_engines(), lease=lease, holder="second")
    assert first.check() and first.holds()
    assert not second.check() and not second.holds()
    for _ in range(3):  # leadership is sticky while the leader renews
        assert first.check() and not second.check()
    holder, token, _ = lease_row(first.engine)
    assert holder == "first"

    # first is frozen (SIGSTOP): it renews nothing. The lease runs out on the database's clock.
    wait_until(second.check, timeout=lease.total_seconds() + 2)
    holder, new_token, _ = lease_row(first.engine)
    assert holder == "second" and new_token == token + 1

    clock.offset += 5  # first wakes: its own clock says the lease it knew is long over
    assert not first.holds()  # fencing: no action on an old belief, before any database call
    assert not first.check()  # and the database agrees: it follows now
    assert second.check() and second.holds()


def test_holds_ends_with_the_lease_even_without_a_database_answer(
    lease_engines: Callable[[], Engine],
) -> None:
    """A leader whose renewals hang or fail stops acting when its lease would have ended."""
    clock = FrozenClock()
    leader = Leadership(lease_engines(), lease=timedelta(seconds=10), holder="l", monotonic=clock)
    assert leader.check() and leader.holds()
    clock.offset += 9.95  # within SAFETY_MARGIN of the end: no longer trusted
    assert not leader.holds()
    assert leader.check() and leader.holds()  # a renewal restores it


def test_release_hands_over_at_once(lease_engines: Callable[[], Engine]) -> None:
    lease = timedelta(seconds=30)
    first = Leadership(lease_engines(), lease=lease, holder="first")
    second = Leadership(lease_engines(), lease=lease, holder="second")
    assert first.check() and not second.check()
    first.release()
    assert not first.holds()
    assert second.check()  # no need to wait 30 s
    assert not first.check()


def test_the_renewer_keeps_a_busy_leader_leading(lease_engines: Callable[[], Engine]) -> None:
    """Jobs may run longer than the lease; the background renewal keeps it."""
    lease = timedelta(seconds=3)
    leader = Leadership(lease_engines(), lease=lease, holder="busy")
    other = Leadership(lease_engines(), lease=lease, holder="other")
    assert leader.check()
    leader.start_renewing()
    try:
        deadline = time.monotonic() + 3 * lease.total_seconds()
        while time.monotonic() < deadline:
            assert not other.check()
            assert leader.holds()
            time.sleep(0.1)
    finally:
        leader.release()
    assert other.check()


# --- one job at a time within the leader ----------------------------------------


def test_a_tick_during_a_sweep_never_turns_an_expiry_into_drift(tmp_path: Path) -> None:
    """The next tick fires while a sweep is between listing bindings and checking drift.

    Tick and sweep run side by side (a slow sweep must not delay an expiry). An
    ending is marked `revoking` before its delete, and drift only looks at active
    requests, so a grant the tick ends in that window is never reported deleted
    outside jitsudo, and it is recorded expired exactly once.
    """
    store = open_store(f"sqlite:///{tmp_path}/jitsudo.db")
    provider, clock = FakeProvider(), FakeClock()
    service = fake_service(store, provider, clock)
    timers = Timers(
        service,
        leadership=Leadership(store.engine, holder="only"),
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

    ticks: list[threading.Thread] = []

    def listing_while_the_next_tick_fires() -> Iterator[ManagedBinding]:
        clock.advance(seconds=1)
        ticks.append(threading.Thread(target=timers.tick, name="tick"))
        ticks[0].start()
        ticks[0].join(timeout=1)  # a tick that went ahead is now stuck before its UPDATE
        yield from list_managed()

    provider.list_managed = listing_while_the_next_tick_fires  # type: ignore[method-assign]
    try:
        assert timers.leadership.check()  # this replica leads
        timers.sweep()
        recorded.set()
        ticks[0].join(timeout=10)  # the held-back tick finishes what it started
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


def leads(running: _RunningBot) -> bool:
    assert running.timers is not None
    return running.timers.leadership.holds()


def die(running: _RunningBot) -> None:
    """The leader's process dies: its threads stop, and it releases nothing."""
    running.server.close()
    assert running.timers is not None
    running.timers.scheduler.shutdown(wait=True)  # not Timers.stop(): that would release
    running.timers.leadership._stop.set()  # the renewer dies with the process
    running.bot.outbox.stop()
    running.bot.store.engine.dispose()


def drained(h: Harness, running: _RunningBot) -> bool:
    later = datetime.now(UTC) + timedelta(days=1)
    return not running.bot.store.due_notices(later)


def test_two_bots_one_leader_no_double_work_and_the_survivor_takes_over(
    tmp_path: Path, postgres_url: str
) -> None:
    with running_bot(
        tmp_path,
        database=postgres_url,
        timers=True,
        scheduler={"sweep_interval": "2s", "leader_lease": f"{LEASE_SECONDS:g}s"},
    ) as h:
        assert h.running is not None
        bots = {"one": h.running, "two": _RunningBot(h.settings, clock=None, timers=True)}
        try:
            spy = Spy()
            for name, running in bots.items():
                spy.watch(name, running)
            leading = poll(lambda: [n for n, r in bots.items() if leads(r)] or None)
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
            assert not leads(follower)

            die(leader)
            if h.running is leader:
                h.running = None  # already dead; nothing for the harness to stop
            # Another replica leads once the dead one's lease runs out (plus one tick).
            wait_until(lambda: leads(follower), timeout=LEASE_SECONDS + TICK_SECONDS + 1)

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
