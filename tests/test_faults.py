"""One bad row or step never stops expiry; transient errors are not final.

The real service and store (SQLite and PostgreSQL), the real Timers, and the
hand-written provider fake. The end-to-end variants over HTTP are in
tests/test_faults_e2e.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot import expiry
from bot.domain import State, Target
from bot.errors import GrantDelayed, GrantFailed
from bot.granting import RETRY_WINDOW
from bot.leader import Leadership
from bot.outbox import OutboxWorker
from bot.scheduler import Timers
from bot.service import AccessService, Draft
from bot.store import Store, Transition
from tests.conftest import FakeClock
from tests.factories import fake_service
from tests.fakes import FakeProvider


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def service(store: Store, provider: FakeProvider, clock: FakeClock) -> AccessService:
    return fake_service(store, provider, clock)


def active(service: AccessService, *, requester: str = "UREQ", minutes: int = 30) -> str:
    draft = Draft(requester, "alice", "edit", "production", timedelta(minutes=minutes), "x")
    request = service.submit(draft)
    service.approve(request.id, approver="UAPPROVER")
    return request.id


def timers(service: AccessService) -> Timers:
    return Timers(
        service,
        leadership=Leadership(service.store.engine, holder="test"),
        outbox=OutboxWorker(service.store, lambda _: None, service.clock),
        sweep_interval=timedelta(seconds=30),
    )


def state(service: AccessService, request_id: str) -> State:
    request = service.store.get(request_id)
    assert request is not None
    return request.state


# --- 4: one bad row or step never stops expiry ----------------------------------


def test_a_huge_error_text_is_stored_bounded(store: Store, clock: FakeClock) -> None:
    """PostgreSQL refuses an over-long VARCHAR; the store bounds every text first."""
    service = fake_service(store, FakeProvider(), clock)
    request = service.submit(Draft("UREQ", "alice", "edit", "production", None, "x"))
    cause = "attempting to grant RBAC permissions not currently held: " + "{rule} " * 1500
    moved = store.transition(
        request.id,
        Transition(
            to=State.DENIED,
            actor="U" * 500,
            at=clock.now(),
            action="denied",
            changes={"decision_note": cause, "decided_by": "UAPPROVER"},
            details={"error": cause, "more": cause},
        ),
    )
    assert moved is not None and moved.decision_note is not None
    assert len(moved.decision_note) == 2000 and moved.decision_note.endswith("…")
    events = store.audit_trail(request.id)
    assert len(events[-1].details) <= 4000 and len(events[-1].actor) <= 64


@pytest.mark.parametrize("poisoned_first", [True, False])
def test_a_request_that_raises_mid_tick_does_not_hold_back_another_due_grant(
    service: AccessService, provider: FakeProvider, clock: FakeClock, poisoned_first: bool
) -> None:
    first, second = active(service), active(service, requester="UOTHER")
    poisoned = first if poisoned_first else second
    healthy = second if poisoned_first else first
    revoke = provider.revoke

    def explode_on_one(request_id: str, target: Target) -> None:
        if request_id == poisoned:
            raise RuntimeError("a bug, or a driver that raises what nobody expected")
        revoke(request_id, target)

    provider.revoke = explode_on_one  # type: ignore[method-assign]
    clock.advance(minutes=31)
    timers(service).tick()
    assert state(service, healthy) is State.EXPIRED
    assert healthy not in provider.bindings
    assert state(service, poisoned) is State.REVOKING  # retried next tick, never recorded
    assert poisoned in provider.bindings


def test_a_step_that_raises_does_not_stop_the_others(
    service: AccessService, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    due = active(service)
    stale = service.submit(Draft("UOTHER", "bob", "view", "production", None, "x"))

    def broken(*_: object, **__: object) -> int:
        raise RuntimeError("resume is broken today")

    monkeypatch.setattr(expiry, "resume_approved", broken)
    clock.advance(hours=2)
    clock_timers = timers(service)
    clock_timers.tick()
    assert state(service, due) is State.EXPIRED  # before the broken step
    assert state(service, stale.id) is State.TIMED_OUT  # after it
    assert (
        clock_timers.metrics.registry.get_sample_value(
            "jitsudo_timer_step_failures_total", {"step": "resume"}
        )
        == 1
    )


# --- 5: transient errors are not final ------------------------------------------


def approved_while_the_cluster_fails(
    service: AccessService, provider: FakeProvider, error: str
) -> str:
    """Submit and approve while every grant attempt fails transiently with `error`."""
    request = service.submit(Draft("UREQ", "alice", "edit", "production", None, "x"))
    provider.failing["grant"] = error
    provider.transient.add("grant")
    with pytest.raises(GrantDelayed):
        service.approve(request.id, approver="UAPPROVER")
    return request.id


def test_a_transient_grant_failure_is_retried_with_backoff_not_failed(
    service: AccessService, provider: FakeProvider, clock: FakeClock
) -> None:
    request_id = approved_while_the_cluster_fails(service, provider, "Kubernetes API unreachable")
    waiting = service.store.get(request_id)
    assert waiting is not None and waiting.state is State.APPROVED
    assert waiting.cause == "retrying: Kubernetes API unreachable" and waiting.attempts == 1
    assert expiry.resume_approved(service) == 0  # backing off: not yet
    clock.advance(seconds=2)
    expiry.resume_approved(service)
    assert provider.count("grant") == 2
    again = service.store.get(request_id)
    assert again is not None and again.attempts == 2 and again.state is State.APPROVED
    del provider.failing["grant"]
    clock.advance(seconds=4)
    assert expiry.resume_approved(service) == 1
    granted = service.store.get(request_id)
    assert granted is not None and granted.state is State.ACTIVE and granted.cause is None
    actions = [e.action for e in service.store.audit_trail(request_id)]
    assert actions.count("grant_retry") == 1 and "grant_failed" not in actions


def test_retries_end_after_the_window_and_only_then_fail(
    service: AccessService, provider: FakeProvider, clock: FakeClock
) -> None:
    request_id = approved_while_the_cluster_fails(service, provider, "503 Service Unavailable")
    clock.advance(seconds=RETRY_WINDOW.total_seconds() + 1)
    expiry.resume_approved(service)
    failed = service.store.get(request_id)
    assert failed is not None and failed.state is State.FAILED
    assert failed.cause == "503 Service Unavailable"


def test_never_failed_while_the_binding_exists(
    service: AccessService, provider: FakeProvider, clock: FakeClock
) -> None:
    """A create that timed out but succeeded: a later permanent refusal must not fail it."""
    request = service.submit(Draft("UREQ", "alice", "edit", "production", None, "x"))
    grant = provider.grant

    def created_then_timed_out(g: object) -> None:
        grant(g)  # type: ignore[arg-type]
        provider.grant = refused  # type: ignore[method-assign]
        raise_transient()

    def refused(g: object) -> None:
        from bot.errors import ProviderError

        raise ProviderError("403 Forbidden")

    def raise_transient() -> None:
        from bot.errors import ProviderError

        raise ProviderError("read timed out", retryable=True)

    provider.grant = created_then_timed_out  # type: ignore[method-assign]
    with pytest.raises(GrantDelayed):
        service.approve(request.id, approver="UAPPROVER")
    clock.advance(seconds=2)
    expiry.resume_approved(service)
    found = service.store.get(request.id)
    assert found is not None and found.state is State.ACTIVE  # its binding was found


def test_a_permanent_refusal_fails_at_once(service: AccessService, provider: FakeProvider) -> None:
    request = service.submit(Draft("UREQ", "alice", "edit", "production", None, "x"))
    provider.failing["grant"] = "403 Forbidden"
    with pytest.raises(GrantFailed):
        service.approve(request.id, approver="UAPPROVER")
    assert state(service, request.id) is State.FAILED


# --- 12: flooding ---------------------------------------------------------------


def test_pending_requests_per_user_are_limited_even_in_a_burst(service: AccessService) -> None:
    """Twenty submissions at once from one member: exactly max_pending_per_user are stored."""
    import threading

    from bot.errors import NotAllowed

    limit = service.policy.max_pending_per_user
    outcomes: list[str] = []

    def submit() -> None:
        try:
            service.submit(Draft("UFLOOD", "f", "view", "production", None, "flood"))
            outcomes.append("stored")
        except NotAllowed as refusal:
            outcomes.append(str(refusal))

    threads = [threading.Thread(target=submit) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("stored") == limit
    assert all("waiting for review" in o for o in outcomes if o != "stored")
    assert len(service.store.find(requester="UFLOOD")) == limit
    # Someone else is not affected, and a decision frees a slot.
    service.submit(Draft("UOTHER", "o", "view", "production", None, "x"))
    first = service.store.find(requester="UFLOOD")[0]
    service.cancel(first.id, actor="UFLOOD")
    service.submit(Draft("UFLOOD", "f", "view", "production", None, "again"))


def test_commands_per_user_per_minute_are_limited() -> None:
    from bot.ratelimit import RateLimiter

    now = [0.0]
    limiter = RateLimiter(per_minute=3, monotonic=lambda: now[0])
    assert [limiter.allow("U1") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("U2")  # per user
    now[0] += 30
    assert not limiter.allow("U1")  # still within the minute of the first three
    now[0] += 30.1
    assert limiter.allow("U1")
