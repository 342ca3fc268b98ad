"""Killed at any point (kill -9), the bot restarts and converges.

The real `jitsudo-bot serve` runs as a child process (tests.subprocess_bot) on
a SQLite file; the Slack and Kubernetes stand-ins live in this process and so
outlive every crash. Each scenario SIGKILLs the bot at an awkward moment,
restarts it on the same database and polls to the deadline the issue promises:
nothing outlives its expiry by more than one sweep interval after the restart,
no request stays approved-but-not-granted, no notice is lost.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from bot.domain import AccessRequest, State, new_request_id
from bot.store import OutboxNotice, Store, Transition
from tests.harness import APPROVER, REQUESTER, wait_until
from tests.subprocess_bot import (
    LEASE_SECONDS,
    TICK_SECONDS,
    World,
    request_when,
    world,
)


def notices_of(store: Store, request_id: str) -> list[OutboxNotice]:
    query = select(OutboxNotice).where(col(OutboxNotice.request_id) == request_id)
    with Session(store.engine) as session:
        return list(session.exec(query))


def undelivered(store: Store) -> list[OutboxNotice]:
    return store.due_notices(datetime.now(UTC) + timedelta(days=1))


def final(w: World, request_id: str) -> AccessRequest:
    return request_when(w.store, request_id, lambda r: r.state.is_final)


def approve_in_database(store: Store, request: AccessRequest, *, at: datetime) -> None:
    """What `approve` writes before it calls the provider: the crash comes right after."""
    moved = store.transition(
        request.id,
        Transition(
            to=State.APPROVED,
            actor=APPROVER,
            at=at,
            action="approved",
            changes={"decided_by": APPROVER, "decided_at": at, "expires_at": at + request.duration},
        ),
    )
    assert moved is not None and moved.state is State.APPROVED


@pytest.mark.parametrize("restart", ["at_once", "after_expiry"])
def test_killed_mid_grant_still_revoked_on_time_after_restart(tmp_path: Path, restart: str) -> None:
    with world(tmp_path) as w:
        w.bot.start()
        request = w.request("request --role view --scope staging --duration 4s --reason crash")
        w.approve(request)
        active = request_when(w.store, request.id, lambda r: r.state is State.ACTIVE)
        assert w.binding(active) is not None and active.expires_at is not None
        expires_at = active.expires_at

        w.bot.kill()
        if restart == "after_expiry":
            wait_until(lambda: datetime.now(UTC) > expires_at, timeout=10)
            assert w.binding(active) is not None  # nobody revoked it while the bot was dead
        ready_at = w.bot.start()

        # The killed process's lease must run out before the restarted one leads.
        promised = max(expires_at.timestamp(), ready_at) + LEASE_SECONDS + TICK_SECONDS + 1
        wait_until(lambda: w.binding(active) is None, timeout=max(promised - time.time(), 0.1))
        ended = final(w, request.id)
        assert ended.state is State.EXPIRED and ended.cause == "expired", w.bot.log_tail()
        assert [e.action for e in w.store.audit_trail(request.id)].count("expired") == 1
        wait_until(lambda: w.dms(request.id, "ended at"), timeout=10)


def test_approved_but_not_granted_is_finished_after_restart(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        w.bot.start()
        crashed = w.request("request --role view --scope staging --duration 10m --reason crash")
        w.approval_ts(crashed.id)  # the approval message was posted before the crash
        w.bot.kill()

        # While the bot is down: two approvals whose grants never ran, decided 60s ago
        # (their claims, had they one, ran out long ago). One can be granted; one cannot.
        decided = datetime.now(UTC) - timedelta(seconds=60)
        approve_in_database(w.store, crashed, at=decided)
        doomed = crashed.evolve(
            id=new_request_id(), scope="vanished", namespace="vanished", created_at=decided
        )
        w.store.insert(doomed, actor=REQUESTER, notice=None)
        approve_in_database(w.store, doomed, at=decided)

        w.bot.start()
        granted = request_when(w.store, crashed.id, lambda r: r.state is not State.APPROVED)
        assert granted.state is State.ACTIVE, (granted, w.bot.log_tail())
        binding = w.binding(granted)
        assert binding is not None
        assert binding["subjects"][0]["name"] == crashed.k8s_user
        assert granted.expires_at is not None
        assert binding["metadata"]["annotations"]["jitsudo.dev/expires-at"] == (
            granted.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        )
        failed = final(w, doomed.id)
        assert failed.state is State.FAILED and failed.cause, failed
        assert "vanished" in failed.cause
        wait_until(lambda: w.dms(crashed.id, "active until"), timeout=10)
        wait_until(lambda: w.dms(doomed.id, doomed.id), timeout=10)
        assert w.store.find(states=[State.APPROVED]) == []


def test_notice_pending_at_the_crash_is_delivered_after_restart(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        w.bot.start()
        request = w.request("request --role view --scope staging --duration 10m --reason crash")
        w.approval_ts(request.id)
        w.slack.fail(method="chat.postMessage", status=500, times=1000)
        w.approve(request)
        request_when(w.store, request.id, lambda r: r.state is State.ACTIVE)

        def granted_notice_deferred() -> bool:
            return any(
                (n.kind, n.audience) == ("granted", "dm")
                and n.delivered_at is None
                and n.attempts >= 1
                for n in notices_of(w.store, request.id)
            )

        wait_until(granted_notice_deferred, timeout=10)
        w.bot.kill()
        refused = [c for c in w.slack.calls_to("chat.postMessage") if c.status == 500]
        assert refused, "Slack never refused the DM; the scenario did not happen"
        assert not w.dms(request.id, "active until")

        with w.slack.lock:  # Slack is back; the stand-in has no public reset of faults
            w.slack.clear_faults()
        w.bot.start()
        wait_until(lambda: w.dms(request.id, "active until"), timeout=15)
        wait_until(lambda: not undelivered(w.store), timeout=10)
        granted_dms = [
            n for n in notices_of(w.store, request.id) if (n.kind, n.audience) == ("granted", "dm")
        ]
        assert granted_dms and all(n.last_error for n in granted_dms)
