"""The lifecycle use cases with hand-written fakes and an injected clock."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from bot import expiry
from bot.domain import DRIFT_CAUSE, ManagedBinding, State
from bot.errors import Conflict, GrantFailed, InvalidInput, NotAllowed, NotFound, ProviderError
from bot.granting import GRANT_CLAIM
from bot.service import AccessService, Draft
from bot.store import Store
from tests.conftest import FakeClock
from tests.factories import fake_service
from tests.fakes import FakeDirectory, FakeProvider


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def service(store: Store, provider: FakeProvider, clock: FakeClock) -> AccessService:
    return fake_service(store, provider, clock)


def draft(**changes: object) -> Draft:
    values: dict[str, object] = {
        "requester": "UREQ",
        "k8s_user": "alice@example.com",
        "role": "edit",
        "scope": "production",
        "duration": timedelta(minutes=30),
        "reason": "scale",
    }
    values.update(changes)
    return Draft(**values)  # type: ignore[arg-type]


def test_submit_stores_pending_with_resolved_target(service: AccessService) -> None:
    request = service.submit(draft(scope="", duration=None))
    assert request.state is State.PENDING
    assert request.namespace == "default"
    assert request.duration == timedelta(hours=1)
    assert service.store.get(request.id) == request


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"role": "god"}, "not a grantable role"),
        ({"duration": timedelta(seconds=10)}, "shorter than the minimum 1m"),
        ({"duration": timedelta(hours=3)}, "longer than the maximum 2h"),
        (
            {"role": "cluster-admin", "scope": "*", "duration": timedelta(hours=1)},
            "maximum 30m for role cluster-admin",
        ),
        ({"reason": "  "}, "reason is required"),
        ({"reason": "x" * 101}, "keep it under 100"),
        ({"scope": "nope"}, "Namespace `nope` does not exist"),
    ],
)
def test_invalid_requests_change_nothing(
    service: AccessService, changes: dict[str, object], message: str
) -> None:
    with pytest.raises((InvalidInput, ProviderError), match=message):
        service.submit(draft(**changes))
    assert service.store.find() == []


def test_approve_grants_until_expiry(
    service: AccessService, provider: FakeProvider, clock: FakeClock
) -> None:
    request = service.submit(draft(scope="*"))
    active = service.approve(request.id, approver="UAPPROVER")
    assert active.state is State.ACTIVE
    assert active.decided_by == "UAPPROVER"
    assert active.expires_at == clock.now() + timedelta(minutes=30)
    grant = provider.grants[request.id]
    assert grant.target.cluster_wide and grant.user == "alice@example.com"
    actions = [e.action for e in service.store.audit_trail(request.id)]
    assert actions == ["submitted", "approved", "granted"]


def test_self_approval_is_refused_even_for_approvers(
    service: AccessService, provider: FakeProvider
) -> None:
    request = service.submit(draft(requester="USELFAPPROVER"))
    with pytest.raises(NotAllowed, match="your own request"):
        service.approve(request.id, approver="USELFAPPROVER")
    with pytest.raises(NotAllowed, match="your own request"):
        service.deny(request.id, approver="USELFAPPROVER")
    assert provider.count("grant") == 0
    assert service.store.get(request.id).state is State.PENDING  # type: ignore[union-attr]


def directory_of(service: AccessService) -> FakeDirectory:
    assert isinstance(service.approvers, FakeDirectory)
    return service.approvers


@pytest.mark.parametrize(
    ("approver_identity", "requested_for"),
    [
        ("alice@example.com", "alice@example.com"),
        ("Alice@Example.COM", "alice@example.com"),  # email-like: case does not matter
        ("oidc:alice", "oidc:alice"),
    ],
)
def test_approver_cannot_decide_a_grant_to_their_own_kubernetes_identity(
    service: AccessService, provider: FakeProvider, approver_identity: str, requested_for: str
) -> None:
    directory_of(service).identities.update(
        {"UAPPROVER": approver_identity, "UAPPROVER2": "carol@example.com"}
    )
    request = service.submit(draft(requester="UREQ", k8s_user=requested_for))
    refusal = rf"own Kubernetes identity \({requested_for}\); another approver must"
    for decide in (service.approve, service.deny, service.may_decide):
        with pytest.raises(NotAllowed, match=refusal):
            decide(request.id, approver="UAPPROVER")
    assert service.awaiting("UAPPROVER") == []  # not listed for them either
    assert [r.id for r in service.awaiting("UAPPROVER2") or []] == [request.id]
    assert provider.count("grant") == 0
    assert service.store.get(request.id).state is State.PENDING  # type: ignore[union-attr]
    assert service.approve(request.id, approver="UAPPROVER2").state is State.ACTIVE


def test_approver_whose_identity_cannot_be_read_is_refused(
    service: AccessService, provider: FakeProvider
) -> None:
    directory_of(service).unreadable.add("UAPPROVER")
    request = service.submit(draft())
    with pytest.raises(NotAllowed, match="cannot take your decision now"):
        service.approve(request.id, approver="UAPPROVER")
    assert provider.count("grant") == 0
    assert service.store.get(request.id).state is State.PENDING  # type: ignore[union-attr]


def test_non_approver_is_refused(service: AccessService, provider: FakeProvider) -> None:
    request = service.submit(draft())
    with pytest.raises(NotAllowed, match="Only approvers"):
        service.approve(request.id, approver="URANDOM")
    assert provider.count("grant") == 0


def test_unknown_request(service: AccessService) -> None:
    with pytest.raises(NotFound):
        service.approve("req_01J8KZ4Q2M3N5P6R7S8T9VWXYZ", approver="UAPPROVER")


def test_concurrent_approvals_grant_once(service: AccessService, provider: FakeProvider) -> None:
    request = service.submit(draft())
    barrier = threading.Barrier(20)
    outcomes: list[str] = []

    def click(approver: str) -> None:
        barrier.wait()
        try:
            service.approve(request.id, approver=approver)
            outcomes.append("won")
        except Conflict:
            outcomes.append("lost")

    service.approvers.approvers |= {f"UA{i}" for i in range(20)}  # type: ignore[attr-defined]
    threads = [threading.Thread(target=click, args=(f"UA{i}",)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("won") == 1 and outcomes.count("lost") == 19
    assert provider.count("grant") == 1


def test_second_decision_is_a_conflict(service: AccessService) -> None:
    request = service.submit(draft())
    service.deny(request.id, approver="UAPPROVER", note="not now")
    with pytest.raises(Conflict, match="already denied by UAPPROVER"):
        service.approve(request.id, approver="UAPPROVER2")
    denied = service.store.get(request.id)
    assert denied is not None and denied.decision_note == "not now"


def test_failed_grant_is_recorded_with_cause(
    service: AccessService, provider: FakeProvider
) -> None:
    request = service.submit(draft())
    provider.failing["grant"] = "forbidden: cannot bind"  # permanent: not retryable
    with pytest.raises(GrantFailed, match="cannot bind"):
        service.approve(request.id, approver="UAPPROVER")
    failed = service.store.get(request.id)
    assert failed is not None and failed.state is State.FAILED
    assert failed.cause == "forbidden: cannot bind"


def test_resume_approved_finishes_a_crashed_grant(
    service: AccessService, provider: FakeProvider
) -> None:
    request = service.submit(draft())
    provider.failing["grant"] = "crash"
    from bot.store import Transition  # simulate a crash between approve and grant

    now = service.clock.now()
    service.store.transition(
        request.id,
        Transition(
            to=State.APPROVED,
            actor="UAPPROVER",
            at=now,
            action="approved",
            changes={
                "decided_by": "UAPPROVER",
                "decided_at": now,
                "expires_at": now + request.duration,
                "claim_until": now + GRANT_CLAIM,  # what approve writes before granting
            },
        ),
    )
    del provider.failing["grant"]
    # Claimed: the approver's own call may still be granting; nobody else runs it.
    assert expiry.resume_approved(service) == 0
    service.clock.advance(seconds=GRANT_CLAIM.total_seconds() - 1)  # type: ignore[attr-defined]
    assert expiry.resume_approved(service) == 0 and provider.count("grant") == 0
    service.clock.advance(seconds=1)  # type: ignore[attr-defined]
    assert expiry.resume_approved(service) == 1
    assert service.store.get(request.id).state is State.ACTIVE  # type: ignore[union-attr]


def test_revoke_deletes_before_recording(service: AccessService, provider: FakeProvider) -> None:
    request = service.submit(draft())
    service.approve(request.id, approver="UAPPROVER")
    with pytest.raises(NotAllowed):
        service.revoke(request.id, actor="URANDOM")
    provider.failing["revoke"] = "API server down"
    ending = service.revoke(request.id, actor="UADMIN")
    assert ending.state is State.REVOKING and ending.ended_by == "UADMIN"
    assert request.id in provider.bindings  # not recorded revoked: the binding is still there
    with pytest.raises(Conflict):
        service.revoke(request.id, actor="UREQ")  # one revocation at a time
    assert expiry.expire_due(service).failed == 1  # the tick retries it
    del provider.failing["revoke"]
    assert expiry.expire_due(service).revoked == 1
    revoked = service.store.get(request.id)
    assert revoked is not None and revoked.state is State.REVOKED
    assert revoked.ended_by == "UADMIN" and request.id not in provider.bindings
    actions = [e.action for e in service.store.audit_trail(request.id)]
    assert actions[-2:] == ["revoking", "revoked"], actions
    with pytest.raises(Conflict):
        service.revoke(request.id, actor="UREQ")


def test_cancel_only_by_requester(service: AccessService) -> None:
    request = service.submit(draft())
    with pytest.raises(NotAllowed):
        service.cancel(request.id, actor="UAPPROVER")
    assert service.cancel(request.id, actor="UREQ").state is State.CANCELLED


def test_sweep_expires_on_time_and_retries_failed_deletes(
    service: AccessService, provider: FakeProvider, clock: FakeClock
) -> None:
    request = service.submit(draft())
    service.approve(request.id, approver="UAPPROVER")
    clock.advance(minutes=29)
    assert expiry.sweep(service).revoked == 0
    clock.advance(minutes=2)
    provider.failing["revoke"] = "timeout"
    provider.failing["remove"] = "timeout"
    result = expiry.sweep(service)
    assert result.failed >= 1 and result.revoked == 0
    assert service.store.get(request.id).state is State.REVOKING  # type: ignore[union-attr]
    provider.failing.clear()
    result = expiry.sweep(service)
    assert result.revoked == 1 and result.failed == 0
    expired = service.store.get(request.id)
    assert expired is not None and expired.state is State.EXPIRED and expired.cause == "expired"
    assert request.id not in provider.bindings


def test_sweep_deletes_expired_orphans(
    service: AccessService, provider: FakeProvider, clock: FakeClock
) -> None:
    past, future = clock.now() - timedelta(minutes=1), clock.now() + timedelta(minutes=10)
    provider.bindings["orphan"] = ManagedBinding("jitsudo-orphan", "default", past)
    provider.bindings["noexpiry"] = ManagedBinding("jitsudo-noexpiry", None, None)
    provider.bindings["young"] = ManagedBinding("jitsudo-young", "default", future)
    result = expiry.sweep(service)
    assert result.revoked == 2
    assert set(provider.bindings) == {"young"}


def test_sweep_detects_out_of_band_deletion(service: AccessService, provider: FakeProvider) -> None:
    request = service.submit(draft())
    service.approve(request.id, approver="UAPPROVER")
    del provider.bindings[request.id]  # kubectl delete
    result = expiry.sweep(service)
    assert result.drifted == 1
    drifted = service.store.get(request.id)
    assert drifted is not None and drifted.state is State.EXPIRED
    assert drifted.cause == DRIFT_CAUSE


def test_sweep_never_guesses_drift_when_cluster_is_down(
    service: AccessService, provider: FakeProvider
) -> None:
    request = service.submit(draft())
    service.approve(request.id, approver="UAPPROVER")
    provider.failing["list_managed"] = "connection refused"
    provider.failing["is_active"] = "connection refused"
    result = expiry.sweep(service)
    assert result.drifted == 0 and result.failed == 1
    assert service.store.get(request.id).state is State.ACTIVE  # type: ignore[union-attr]


def test_sweep_removes_binding_of_an_ended_request(
    service: AccessService, provider: FakeProvider
) -> None:
    request = service.submit(draft())
    service.approve(request.id, approver="UAPPROVER")
    binding = provider.bindings[request.id]
    service.revoke(request.id, actor="UREQ")
    provider.bindings[request.id] = binding  # recreated by hand after the revoke
    assert expiry.sweep(service).revoked == 1
    assert request.id not in provider.bindings


def test_pending_requests_time_out(service: AccessService, clock: FakeClock) -> None:
    request = service.submit(draft())
    clock.advance(minutes=59)
    assert expiry.time_out_stale(service) == 0
    clock.advance(minutes=2)
    assert expiry.time_out_stale(service) == 1
    assert service.store.get(request.id).state is State.TIMED_OUT  # type: ignore[union-attr]
    with pytest.raises(Conflict, match="timed out"):
        service.approve(request.id, approver="UAPPROVER")


def test_expiry_warning_is_queued_once(service: AccessService, clock: FakeClock) -> None:
    request = service.submit(draft())
    service.approve(request.id, approver="UAPPROVER")
    clock.advance(minutes=24)
    assert expiry.warn_due(service) == 0
    clock.advance(minutes=2)  # 4 minutes left, warning is 5m
    assert expiry.warn_due(service) == 1
    assert expiry.warn_due(service) == 0
    kinds = [n.kind for n in service.store.due_notices(clock.now())]
    assert kinds.count("expiry_warning") == 1


def test_extension_moves_expiry_after_approval(
    service: AccessService, provider: FakeProvider, clock: FakeClock
) -> None:
    parent = service.approve(service.submit(draft()).id, approver="UAPPROVER")
    clock.advance(minutes=25)
    with pytest.raises(NotAllowed, match="holds this grant"):
        service.request_extension(
            parent.id, requester="UOTHER", duration=timedelta(minutes=30), reason="x"
        )
    extension = service.request_extension(
        parent.id, requester="UREQ", duration=timedelta(minutes=30), reason="still busy"
    )
    assert extension.state is State.PENDING and extension.extends == parent.id
    assert (extension.role, extension.namespace) == (parent.role, parent.namespace)
    with pytest.raises(NotAllowed):
        service.approve(extension.id, approver="UREQ")
    applied = service.approve(extension.id, approver="UAPPROVER2")
    assert applied.state is State.EXTENDED
    moved = service.store.get(parent.id)
    assert moved is not None and moved.state is State.ACTIVE
    assert moved.expires_at == clock.now() + timedelta(minutes=30)  # counted from approval
    assert provider.bindings[parent.id].expires_at == moved.expires_at
    assert provider.count("grant") == 1  # patched, never re-created
    assert not moved.warned  # a new warning will come before the new end


def test_extension_over_the_maximum_is_refused(service: AccessService) -> None:
    parent = service.approve(service.submit(draft()).id, approver="UAPPROVER")
    with pytest.raises(InvalidInput, match="longer than the maximum"):
        service.request_extension(
            parent.id, requester="UREQ", duration=timedelta(hours=5), reason="x"
        )


def test_extension_of_an_ended_grant_fails_cleanly(
    service: AccessService, provider: FakeProvider
) -> None:
    parent = service.approve(service.submit(draft()).id, approver="UAPPROVER")
    extension = service.request_extension(
        parent.id, requester="UREQ", duration=timedelta(minutes=10), reason="x"
    )
    service.revoke(parent.id, actor="UREQ")
    with pytest.raises(GrantFailed, match="nothing to extend"):
        service.approve(extension.id, approver="UAPPROVER")
    failed = service.store.get(extension.id)
    assert failed is not None and failed.state is State.FAILED
    assert provider.count("extend") == 0


def test_grants_shorter_than_the_warning_window_get_no_warning(
    service: AccessService, clock: FakeClock
) -> None:
    short = service.submit(draft(duration=timedelta(minutes=4)))
    service.approve(short.id, approver="UAPPROVER")
    clock.advance(minutes=1)
    assert expiry.warn_due(service) == 0


def test_a_revocation_in_flight_is_not_drift(
    service: AccessService, provider: FakeProvider
) -> None:
    request = service.approve(service.submit(draft()).id, approver="UAPPROVER")
    ending = service.ending.begin(request, by="UREQ", cause=None)  # deleted, not yet recorded
    assert ending is not None
    del provider.bindings[request.id]
    assert expiry.sweep(service).drifted == 0  # revoking is not active: never drift
    revoked = service.store.get(request.id)
    assert revoked is not None and revoked.state is State.REVOKED and revoked.ended_by == "UREQ"
    assert revoked.cause is None


def test_an_overlong_denial_note_is_refused_not_cut(service: AccessService) -> None:
    request = service.submit(draft())
    with pytest.raises(InvalidInput, match="keep it under 100"):
        service.deny(request.id, approver="UAPPROVER", note="x" * 101)
    assert service.store.get(request.id).state is State.PENDING  # type: ignore[union-attr]
