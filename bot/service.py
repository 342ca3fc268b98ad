"""Use cases: submit, approve, deny, cancel, revoke, expire, time out, sweep.

One verb per operation. Each checks its rule (bot.policy), wins or loses one
conditional UPDATE (bot.store), and only the winner calls the provider. Errors
are domain errors (bot.errors); adapters map them to what the user sees.
Called by the Slack listeners, the scheduler jobs and the CLI.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot import policy as rules
from bot.domain import (
    AccessRequest,
    Grant,
    Notice,
    State,
    new_request_id,
    resolve_target,
)
from bot.errors import Conflict, GrantFailed, NotAllowed, NotFound, ProviderError
from bot.policy import Policy
from bot.ports import AccessProvider, ApproverDirectory, Clock
from bot.store import Store, Transition

log = logging.getLogger(__name__)

SYSTEM = "jitsudo"


@dataclass(frozen=True)
class Draft:
    """What a requester asks for, already parsed but not yet checked."""

    requester: str
    k8s_user: str
    role: str
    scope: str
    duration: timedelta | None
    reason: str


class AccessService:
    """The request lifecycle over a store, a provider and an approver directory."""

    def __init__(
        self,
        *,
        store: Store,
        provider: AccessProvider,
        approvers: ApproverDirectory,
        policy: Policy,
        clock: Clock,
        default_namespace: str,
        notices_waiting: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.provider = provider
        self.approvers = approvers
        self.policy = policy
        self.clock = clock
        self.default_namespace = default_namespace
        self.notices_waiting = notices_waiting

    # --- requests -----------------------------------------------------------

    def check(self, draft: Draft) -> AccessRequest:
        """Validate a draft fully (policy and provider pre-flight) without storing it."""
        duration = draft.duration or self.policy.default_duration
        self.policy.check_role(draft.role)
        self.policy.check_duration(draft.role, duration)
        reason = self.policy.check_reason(draft.reason)
        target = resolve_target(draft.scope, default_namespace=self.default_namespace)
        now = self.clock.now()
        request = AccessRequest(
            id=new_request_id(),
            requester=draft.requester,
            k8s_user=draft.k8s_user,
            provider=self.provider.name,
            role=draft.role,
            scope=draft.scope,
            namespace=target.namespace,
            duration=duration,
            reason=reason,
            state=State.PENDING,
            created_at=now,
        )
        self.provider.preflight(_grant_of(request, expires_at=now + duration))
        return request

    def submit(self, draft: Draft) -> AccessRequest:
        """Store a valid request as pending; approvers are told via the outbox."""
        request = self.check(draft)
        self.store.insert(request, actor=draft.requester, notice=Notice.SUBMITTED)
        self.notices_waiting()
        return request

    def request_extension(
        self, parent_id: str, *, requester: str, duration: timedelta, reason: str
    ) -> AccessRequest:
        """File a linked request for more time on an active grant; approved like any other."""
        parent = self._load(parent_id)
        if parent.requester != requester:
            raise NotAllowed("Only the person who holds this grant can ask to extend it.")
        if parent.state is not State.ACTIVE:
            raise Conflict(f"{parent.id} is {parent.state}, not active; request new access.")
        self.policy.check_duration(parent.role, duration)
        request = parent.evolve(
            id=new_request_id(),
            duration=duration,
            reason=self.policy.check_reason(reason),
            state=State.PENDING,
            created_at=self.clock.now(),
            extends=parent.id,
            **_UNDECIDED,
        )
        self.store.insert(request, actor=requester, notice=Notice.SUBMITTED)
        self.notices_waiting()
        return request

    def get(self, request_id: str, *, viewer: str) -> AccessRequest:
        request = self._load(request_id)
        if not rules.can_view(request, viewer, self.approvers):
            raise NotAllowed("Only the requester, approvers and admins can see this request.")
        return request

    def mine(self, user: str) -> list[AccessRequest]:
        return self.store.find(requester=user, limit=20)

    def awaiting(self, approver: str) -> list[AccessRequest] | None:
        """Pending requests this approver may decide (never their own); None for non-approvers."""
        if not self.approvers.is_approver(approver):
            return None
        pending = self.store.find(states=[State.PENDING], limit=50)
        return [request for request in pending if request.requester != approver]

    # --- decisions ----------------------------------------------------------

    def may_decide(self, request_id: str, *, approver: str) -> AccessRequest:
        """Raise unless `approver` may decide this request now (before asking them why)."""
        request = self._decidable(request_id, approver)
        if request.state is not State.PENDING:
            raise Conflict(_already(request))
        return request

    def approve(self, request_id: str, *, approver: str) -> AccessRequest:
        """Approve and grant; exactly one approval wins however many clicks arrive."""
        request = self._decidable(request_id, approver)
        now = self.clock.now()
        approved = self._move(
            request,
            State.APPROVED,
            actor=approver,
            action="approved",
            changes={
                "decided_by": approver,
                "decided_at": now,
                "expires_at": now + request.duration,
            },
        )
        return self.complete_approval(approved)

    def deny(self, request_id: str, *, approver: str, note: str = "") -> AccessRequest:
        request = self._decidable(request_id, approver)
        note = self.policy.check_reason(note, required=False)
        denied = self._move(
            request,
            State.DENIED,
            actor=approver,
            action="denied",
            changes={
                "decided_by": approver,
                "decided_at": self.clock.now(),
                "decision_note": note or None,
            },
            notice=Notice.DENIED,
        )
        return denied

    def cancel(self, request_id: str, *, actor: str) -> AccessRequest:
        request = self._load(request_id)
        rules.check_can_cancel(request, actor)
        return self._move(
            request,
            State.CANCELLED,
            actor=actor,
            action="cancelled",
            changes={"ended_at": self.clock.now(), "ended_by": actor},
            notice=Notice.CANCELLED,
        )

    def complete_approval(self, request: AccessRequest) -> AccessRequest:
        """Finish an approved request: grant it, or apply it if it is an extension.

        Called right after approval, and by the timers for requests a crash left
        approved-but-not-granted (both paths are idempotent).
        """
        if request.extends:
            return self._apply_extension(request)
        return self._grant(request)

    # --- endings ------------------------------------------------------------

    def revoke(self, request_id: str, *, actor: str) -> AccessRequest:
        """Delete the grant now; recorded only once the binding is really gone."""
        request = self._load(request_id)
        rules.check_can_revoke(request, actor, self.approvers)
        if request.state is not State.ACTIVE:
            raise Conflict(f"{request.id} is {request.state}, not active; nothing to revoke.")
        self._mark_revoking(request, actor)
        try:
            self.provider.revoke(request.id, request.target)
        except ProviderError:
            self.store.update_fields(request.id, expected=State.ACTIVE, changes={"ended_by": None})
            raise
        return self._move(
            request,
            State.REVOKED,
            actor=actor,
            action="revoked",
            changes={"ended_at": self.clock.now(), "ended_by": actor},
            notice=Notice.REVOKED,
        )

    def _mark_revoking(self, request: AccessRequest, actor: str) -> None:
        """Note the revoker before deleting, so the sweeper does not call the gap drift.

        Between our delete and our record the binding is gone while the request
        is still active; an active request with ended_by set is a revocation in
        flight, which drift detection leaves alone.
        """
        marked = self.store.update_fields(
            request.id, expected=State.ACTIVE, changes={"ended_by": actor}
        )
        if not marked:
            raise Conflict(_already(self._load(request.id)))

    def expire(self, request: AccessRequest) -> bool:
        """End an active grant whose time is up: delete, then record; False if the delete failed."""
        try:
            self.provider.revoke(request.id, request.target)
        except ProviderError as error:
            log.warning("could not revoke %s yet: %s", request.id, error)
            return False
        self.record_expiry(request)
        return True

    def record_expiry(
        self, request: AccessRequest, *, cause: str = "expired", notice: Notice = Notice.EXPIRED
    ) -> bool:
        """Mark an active request expired; only for a binding already known to be gone."""
        now = self.clock.now()
        moved = self.store.transition(
            request.id,
            Transition(
                to=State.EXPIRED,
                actor=SYSTEM,
                at=now,
                action=notice.value,
                changes={"ended_at": now, "ended_by": SYSTEM, "cause": cause},
                notice=notice,
            ),
        )
        if moved is None:
            return False
        self.notices_waiting()
        return True

    def warn(self, request: AccessRequest) -> bool:
        """Queue the expiry warning for an active grant, once."""
        queued = self.store.update_fields(
            request.id,
            expected=State.ACTIVE,
            changes={"warned": True},
            only_if={"warned": False},
            audit=(SYSTEM, "expiry_warning", self.clock.now()),
            notice=Notice.EXPIRY_WARNING,
        )
        if queued:
            self.notices_waiting()
        return queued

    def time_out(self, request: AccessRequest) -> bool:
        """A pending request nobody reviewed in time becomes timed_out."""
        now = self.clock.now()
        move = Transition(
            to=State.TIMED_OUT,
            actor=SYSTEM,
            at=now,
            action="timed_out",
            changes={"ended_at": now},
            notice=Notice.TIMED_OUT,
        )
        if self.store.transition(request.id, move) is None:
            return False
        self.notices_waiting()
        return True

    # --- helpers ------------------------------------------------------------

    def _load(self, request_id: str) -> AccessRequest:
        request = self.store.get(request_id)
        if request is None:
            raise NotFound(f"No request {request_id}. Check the ID with /jitsudo list.")
        return request

    def _decidable(self, request_id: str, approver: str) -> AccessRequest:
        request = self._load(request_id)
        rules.check_can_decide(request, approver, self.approvers)
        return request

    def _move(
        self,
        request: AccessRequest,
        to: State,
        *,
        actor: str,
        action: str,
        changes: dict[str, Any],
        notice: Notice | None = None,
    ) -> AccessRequest:
        moved = self.store.transition(
            request.id,
            Transition(
                to=to,
                actor=actor,
                at=self.clock.now(),
                action=action,
                changes=changes,
                notice=notice,
            ),
        )
        if moved is None:
            raise Conflict(_already(self._load(request.id)))
        if notice:
            self.notices_waiting()
        return moved

    def _grant(self, request: AccessRequest) -> AccessRequest:
        assert request.expires_at is not None  # set by the approval
        try:
            self.provider.grant(_grant_of(request, expires_at=request.expires_at))
        except ProviderError as error:
            failed = self._finish_grant(request, State.FAILED, {"cause": str(error)}, Notice.FAILED)
            raise GrantFailed(f"Approved, but the grant failed: {error}", request=failed) from error
        return self._finish_grant(
            request, State.ACTIVE, {"granted_at": self.clock.now()}, Notice.GRANTED
        )

    def _apply_extension(self, extension: AccessRequest) -> AccessRequest:
        """Move the parent's expiry: patch the annotation first, then the database.

        The annotation goes first so the sweeper never sees a binding whose
        annotation says it expired while the database says it has not.
        """
        assert extension.extends is not None and extension.expires_at is not None
        parent = self._load(extension.extends)
        new_expiry = max(extension.expires_at, parent.expires_at or extension.expires_at)
        try:
            if parent.state is not State.ACTIVE:
                raise ProviderError(f"{parent.id} is {parent.state}; there is nothing to extend")
            self.provider.extend(parent.id, parent.target, new_expiry)
        except ProviderError as error:
            failed = self._finish_grant(
                extension, State.FAILED, {"cause": str(error)}, Notice.FAILED
            )
            raise GrantFailed(
                f"Approved, but the extension failed: {error}", request=failed
            ) from error
        moved = self.store.update_fields(
            parent.id,
            expected=State.ACTIVE,
            changes={"expires_at": new_expiry, "warned": False},
            audit=(extension.decided_by or SYSTEM, "extended", self.clock.now()),
        )
        if not moved:
            cause = f"{parent.id} ended before the extension was applied"
            failed = self._finish_grant(extension, State.FAILED, {"cause": cause}, Notice.FAILED)
            raise GrantFailed(f"Approved, but {cause}.", request=failed)
        return self._finish_grant(
            extension,
            State.EXTENDED,
            {"expires_at": new_expiry, "granted_at": self.clock.now()},
            Notice.EXTENDED,
        )

    def _finish_grant(
        self, request: AccessRequest, to: State, changes: dict[str, Any], notice: Notice
    ) -> AccessRequest:
        moved = self.store.transition(
            request.id,
            Transition(
                to=to,
                actor=request.decided_by or SYSTEM,
                at=self.clock.now(),
                action={State.ACTIVE: "granted", State.EXTENDED: "extension_applied"}.get(
                    to, "grant_failed"
                ),
                changes=changes,
                notice=notice,
            ),
        )
        if moved is None:
            raise Conflict(_already(self._load(request.id)))
        self.notices_waiting()
        return moved


_UNDECIDED: dict[str, object] = {
    "decided_by": None,
    "decided_at": None,
    "decision_note": None,
    "granted_at": None,
    "expires_at": None,
    "ended_at": None,
    "ended_by": None,
    "cause": None,
    "warned": False,
}


def _grant_of(request: AccessRequest, *, expires_at: datetime) -> Grant:
    return Grant(
        request_id=request.id,
        user=request.k8s_user,
        role=request.role,
        target=request.target,
        expires_at=expires_at,
    )


def _already(request: AccessRequest) -> str:
    """Why a lost race changed nothing, in the words the loser should see."""
    who = f" by {request.decided_by}" if request.decided_by else ""
    if request.state in (State.APPROVED, State.ACTIVE):
        return f"{request.id} was already approved{who}."
    if request.state is State.DENIED:
        return f"{request.id} was already denied{who}."
    return f"{request.id} is {request.state.replace('_', ' ')}; nothing to do."
