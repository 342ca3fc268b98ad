"""The periodic jobs, as plain functions over the service's own operations.

Called by bot.scheduler every tick (expire_due first, then resume_approved,
warn_due, time_out_stale) and every sweep interval (sweep), and by
`jitsudo-bot sweep`. Each is idempotent: running it twice, or on two
replicas, changes nothing more. Each request is handled on its own: one that
raises is logged and counted, and the rest go on. `leading` is the fencing
test (bot.leader): a job stops as soon as this replica may no longer act.
Each request's lines carry its ID (bot.logs.acting); the sweep reports its
duration and success to bot.metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from datetime import datetime
from functools import partial

from bot.domain import DRIFT_CAUSE, AccessRequest, ManagedBinding, State, SweepResult
from bot.errors import Conflict, GrantDelayed, GrantFailed, ProviderError
from bot.logs import acting
from bot.service import SYSTEM, AccessService
from bot.transitions import grant_of

log = logging.getLogger(__name__)
Leading = Callable[[], bool]


def _always() -> bool:
    return True


def _each(
    requests: Iterable[AccessRequest],
    act: Callable[[AccessRequest], bool],
    *,
    leading: Leading,
    what: str,
) -> tuple[int, int]:
    """Run `act` on each request in isolation; (how many it did, how many raised or failed)."""
    done = failed = 0
    for request in requests:
        if not leading():
            break
        with acting(request_id=request.id, actor=SYSTEM):
            try:
                ok = act(request)
            except Exception:
                log.exception("%s failed for %s; going on with the rest", what, request.id)
                ok = False
        done, failed = done + ok, failed + (not ok)
    return done, failed


def expire_due(service: AccessService, *, leading: Leading = _always) -> SweepResult:
    """End every active grant whose expires_at has passed, and retry every ending in flight."""
    now = service.clock.now()
    due = service.store.find(states=[State.ACTIVE], expires_before=now)
    ending = service.store.find(states=[State.REVOKING])
    done, failed = _each(
        [*ending, *due], service.ending.expire, leading=leading, what="expiring a grant"
    )
    return SweepResult(revoked=done, failed=failed)


def warn_due(service: AccessService, *, leading: Leading = _always) -> int:
    """Queue one warning per grant, policy.expiry_warning before it ends."""
    now = service.clock.now()
    horizon = now + service.policy.expiry_warning
    soon = service.store.find(states=[State.ACTIVE], expires_before=horizon)
    deserving = [request for request in soon if _deserves_warning(service, request, now)]
    done, _ = _each(deserving, service.warn, leading=leading, what="warning")
    return done


def _deserves_warning(service: AccessService, request: AccessRequest, now: datetime) -> bool:
    """Not yet warned, not yet over, and long enough that a warning is news."""
    if request.warned or request.expires_at is None or request.expires_at <= now:
        return False
    return request.duration > service.policy.expiry_warning


def time_out_stale(service: AccessService, *, leading: Leading = _always) -> int:
    """Pending requests older than policy.request_ttl become timed_out."""
    cutoff = service.clock.now() - service.policy.request_ttl
    stale = service.store.find(states=[State.PENDING], created_before=cutoff)
    done, _ = _each(stale, service.time_out, leading=leading, what="timing out")
    return done


def resume_approved(service: AccessService, *, leading: Leading = _always) -> int:
    """Finish approved requests whose claim ran out: a crashed granter, or a retry now due."""
    now = service.clock.now()
    claimable = [
        request
        for request in service.store.find(states=[State.APPROVED])
        if request.claim_until is None or request.claim_until <= now
    ]
    done, _ = _each(claimable, lambda r: _resume(service, r), leading=leading, what="granting")
    return done


def _resume(service: AccessService, request: AccessRequest) -> bool:
    # Failed and delayed grants are recorded as such; Conflict: another caller finished it.
    with suppress(GrantFailed, GrantDelayed, Conflict):
        return service.granting.resume(request) is not None
    return True


def sweep(service: AccessService, *, leading: Leading = _always) -> SweepResult:
    """One sweep (below), timed; a sweep without failures is noted as the last success."""
    started = time.monotonic()
    result: SweepResult | None = None
    try:
        result = _sweep(service, leading)
    finally:
        ok = result is not None and result.failed == 0
        service.metrics.swept(
            seconds=time.monotonic() - started,
            succeeded_at=service.clock.now() if ok else None,
        )
    return result


def _sweep(service: AccessService, leading: Leading) -> SweepResult:
    """The seed's expiry sweeper, plus drift detection.

    (a) every labelled binding whose expires-at has passed or is unreadable is
    deleted, orphans and foreign ones included; a binding that really is a
    request's (bindings.belongs_to) also ends with its request; (b) an active
    request whose binding is gone was deleted out of band: it ends as drift.
    A labelled binding that is not the request's it names never changes that
    request, and never hides its drift.
    """
    due = expire_due(service, leading=leading)
    now = service.clock.now()
    seen: set[str] = set()
    outcomes: list[tuple[str, bool]] = []
    try:
        for binding in service.provider.list_managed():
            if not leading():
                return SweepResult(revoked=due.revoked, failed=due.failed + 1)
            request = _owner(service, binding)
            if request is not None:
                seen.add(request.id)
            with acting(request_id=request.id if request else None, action="sweep"):
                outcomes += _isolated(partial(_sweep_one, service, binding, request, now))
    except ProviderError as error:
        log.warning("sweep could not list managed bindings: %s", error)
        return SweepResult(revoked=due.revoked, failed=due.failed + 1)
    drifted, drift_failed = _detect_drift(service, seen, leading)
    return SweepResult(
        revoked=due.revoked + sum(ok for kind, ok in outcomes if kind == "removed"),
        drifted=drifted,
        failed=due.failed + drift_failed + sum(not ok for _, ok in outcomes),
        foreign=sum(1 for kind, _ in outcomes if kind == "foreign"),
    )


def _owner(service: AccessService, binding: ManagedBinding) -> AccessRequest | None:
    """The request this binding really is the grant of, or None (orphan or foreign)."""
    request = service.store.get(binding.request_id) if binding.request_id else None
    return request if request is not None and binding.belongs_to(request) else None


def _isolated(act: Callable[[], tuple[str, bool] | None]) -> list[tuple[str, bool]]:
    try:
        outcome = act()
    except Exception:
        log.exception("sweeping one binding failed; going on with the rest")
        return [("error", False)]
    return [outcome] if outcome else []


def _sweep_one(
    service: AccessService, binding: ManagedBinding, request: AccessRequest | None, now: datetime
) -> tuple[str, bool] | None:
    """What to do with one labelled binding: ("removed"|"foreign", ok) or None (kept)."""
    stale = binding.expires_at is None or binding.expires_at <= now
    if request is None:
        if not stale:
            return ("foreign", True)
        return ("removed", _remove(service, binding))
    if request.state is State.ACTIVE and stale:
        return ("removed", service.ending.expire(request))
    if request.state is State.REVOKING:
        return ("removed", service.ending.expire(request))
    if request.state.is_final or (stale and request.state is not State.APPROVED):
        return ("removed", _remove(service, binding))
    return None


def _remove(service: AccessService, binding: ManagedBinding) -> bool:
    try:
        service.provider.remove(binding)
    except ProviderError as error:
        log.error("could not delete labelled binding %s yet: %s", binding.name, error)
        return False
    return True


def _detect_drift(service: AccessService, seen: set[str], leading: Leading) -> tuple[int, int]:
    """Active requests whose binding vanished end as expired, cause: deleted outside jitsudo."""
    suspects = [r for r in service.store.find(states=[State.ACTIVE]) if r.id not in seen]
    missing = [r for r in suspects if not _still_there(service, r)]
    return _each(
        missing,
        lambda r: service.ending.end(r, by=SYSTEM, cause=DRIFT_CAUSE) is not None,
        leading=leading,
        what="recording drift",
    )


def _still_there(service: AccessService, request: AccessRequest) -> bool:
    """When the cluster cannot answer, assume the binding is there: never guess drift."""
    try:
        return service.provider.is_active(grant_of(request))
    except ProviderError as error:
        log.warning("could not check %s: %s", request.id, error)
        return True
