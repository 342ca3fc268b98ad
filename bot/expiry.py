"""The periodic jobs, as plain functions over the service's own operations.

Called by bot.scheduler every tick (expire_due, warn_due, time_out_stale,
resume_approved) and every sweep interval (sweep), and by `jitsudo-bot sweep`.
Each is idempotent: running it twice, or on two replicas, changes nothing more.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from datetime import datetime, timedelta

from bot.domain import DRIFT_CAUSE, AccessRequest, ManagedBinding, Notice, State, SweepResult
from bot.errors import Conflict, GrantFailed, ProviderError
from bot.service import AccessService

log = logging.getLogger(__name__)

RESUME_AFTER = timedelta(seconds=10)


def expire_due(service: AccessService) -> SweepResult:
    """Expire every active grant whose expires_at has passed (delete first, record after)."""
    due = service.store.find(states=[State.ACTIVE], expires_before=service.clock.now())
    done = [service.expire(request) for request in due]
    return SweepResult(revoked=done.count(True), failed=done.count(False))


def warn_due(service: AccessService) -> int:
    """Queue one warning per grant, policy.expiry_warning before it ends."""
    now = service.clock.now()
    horizon = now + service.policy.expiry_warning
    soon = service.store.find(states=[State.ACTIVE], expires_before=horizon)
    return sum(
        service.warn(request) for request in soon if _deserves_warning(service, request, now)
    )


def _deserves_warning(service: AccessService, request: AccessRequest, now: datetime) -> bool:
    """Not yet warned, not yet over, and long enough that a warning is news."""
    if request.warned or request.expires_at is None or request.expires_at <= now:
        return False
    return request.duration > service.policy.expiry_warning


def time_out_stale(service: AccessService) -> int:
    """Pending requests older than policy.request_ttl become timed_out."""
    cutoff = service.clock.now() - service.policy.request_ttl
    stale = service.store.find(states=[State.PENDING], created_before=cutoff)
    return sum(service.time_out(request) for request in stale)


def resume_approved(service: AccessService, *, older_than: timedelta = RESUME_AFTER) -> int:
    """Finish requests a crash left approved-but-not-granted; returns how many.

    Only those approved more than `older_than` ago: a younger one is still being
    granted by the approver's own call.
    """
    cutoff = service.clock.now() - older_than
    finished = 0
    for request in service.store.find(states=[State.APPROVED]):
        if request.decided_at is not None and request.decided_at > cutoff:
            continue
        # GrantFailed is recorded as failed; Conflict means another caller finished it.
        with suppress(GrantFailed, Conflict):
            service.complete_approval(request)
        finished += 1
    return finished


def sweep(service: AccessService) -> SweepResult:
    """The seed's expiry sweeper, plus drift detection.

    (a) delete every managed binding whose expires-at has passed (or is
    unreadable, or whose request has ended), including orphans the database
    does not know; (b) mark active requests whose binding is gone as expired;
    (c) expire active requests past their time, each recorded only after its
    delete succeeded.
    """
    due = expire_due(service)
    revoked, failed = due.revoked, due.failed
    seen: set[str] = set()
    now = service.clock.now()
    try:
        for binding in service.provider.list_managed():
            if binding.request_id:
                seen.add(binding.request_id)
            if _is_stale(service, binding, now):
                removed = _remove(service, binding)
                revoked, failed = revoked + removed, failed + (not removed)
    except ProviderError as error:
        log.warning("sweep could not list managed bindings: %s", error)
        return SweepResult(revoked=revoked, failed=failed + 1)
    return SweepResult(revoked=revoked, drifted=_detect_drift(service, seen), failed=failed)


def _is_stale(service: AccessService, binding: ManagedBinding, now: datetime) -> bool:
    """Expired, without a readable expiry, or left behind by an ended request."""
    if binding.expires_at is None or binding.expires_at <= now:
        return True
    if binding.request_id is None:
        return False
    request = service.store.get(binding.request_id)
    return request is not None and request.state.is_final


def _remove(service: AccessService, binding: ManagedBinding) -> bool:
    try:
        service.provider.remove(binding)
    except ProviderError as error:
        log.warning("could not delete managed binding %s yet: %s", binding.name, error)
        return False
    request = service.store.get(binding.request_id) if binding.request_id else None
    if request is not None and request.state is State.ACTIVE:
        service.record_expiry(request)  # the binding was just deleted: no second delete
    return True


def _detect_drift(service: AccessService, seen: set[str]) -> int:
    drifted = 0
    for request in service.store.find(states=[State.ACTIVE]):
        revoking = request.ended_by is not None  # a revocation in flight, not drift
        if request.id in seen or revoking or _still_there(service, request):
            continue
        drifted += service.record_expiry(request, cause=DRIFT_CAUSE, notice=Notice.DRIFTED)
    return drifted


def _still_there(service: AccessService, request: AccessRequest) -> bool:
    """When the cluster cannot answer, assume the binding is there: never guess drift."""
    try:
        return service.provider.is_active(request.id, request.target)
    except ProviderError as error:
        log.warning("could not check %s: %s", request.id, error)
        return True
