"""Use cases: submit, approve, deny, cancel, revoke, extend, warn, time out.

One verb per operation. Each checks its rule (bot.policy), wins or loses one
conditional UPDATE (bot.store), and only the winner calls the provider.
Making grants lives in bot.granting, taking them away in bot.ending; the
service owns one of each. Errors are domain errors (bot.errors); adapters map
them to what the user sees. Called by the Slack listeners, the scheduler jobs
(bot.expiry) and the CLI.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypedDict

from bot import policy as rules
from bot.domain import (
    AccessRequest,
    InvalidInput,
    Notice,
    State,
    new_request_id,
    resolve_target,
    whole_second,
)
from bot.ending import Ending
from bot.errors import AccessError, Conflict, NotAllowed
from bot.granting import GRANT_CLAIM, Granting
from bot.logs import on_request
from bot.metrics import Metrics, Outcome
from bot.policy import Policy
from bot.ports import AccessProvider, ApproverDirectory, Clock
from bot.ratelimit import RateLimiter
from bot.store import Store
from bot.transitions import SYSTEM, Steps, already, grant_of

__all__ = ["SYSTEM", "AccessService", "Draft"]


class _StepParts(TypedDict):
    """What the service shares with its granting and ending."""

    store: Store
    provider: AccessProvider
    clock: Clock
    notices_waiting: Callable[[], None]
    metrics: Metrics


@dataclass(frozen=True)
class Draft:
    """What a requester asks for, already parsed but not yet checked."""

    requester: str
    k8s_user: str
    role: str
    scope: str
    duration: timedelta | None
    reason: str


class AccessService(Steps):
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
        metrics: Metrics | None = None,
    ) -> None:
        metrics = metrics or Metrics()
        parts = _StepParts(
            store=store,
            provider=provider,
            clock=clock,
            notices_waiting=notices_waiting,
            metrics=metrics,
        )
        super().__init__(**parts)
        self.approvers = approvers
        self.policy = policy
        self.default_namespace = default_namespace
        self.granting = Granting(**parts)
        self.ending = Ending(**parts)
        self.commands = RateLimiter(per_minute=policy.commands_per_minute)

    # --- requests -----------------------------------------------------------

    def admit(self, user: str) -> None:
        """Refuse a user who sends commands faster than policy.commands_per_minute."""
        if not self.commands.allow(user):
            raise NotAllowed(
                f"You sent more than {self.policy.commands_per_minute} commands in the last "
                "minute; wait a moment and try again."
            )

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
        self.provider.preflight(grant_of(request, expires_at=now + duration))
        return request

    def submit(self, draft: Draft) -> AccessRequest:
        """Store a valid request as pending; approvers are told via the outbox."""
        return self._file(lambda: self.check(draft))

    @on_request("extend")
    def request_extension(
        self, parent_id: str, *, requester: str, duration: timedelta, reason: str
    ) -> AccessRequest:
        """File a linked request for more time on an active grant; approved like any other."""
        return self._file(
            lambda: self._extension(
                parent_id, requester=requester, duration=duration, reason=reason
            )
        )

    def _extension(
        self, parent_id: str, *, requester: str, duration: timedelta, reason: str
    ) -> AccessRequest:
        parent = self.load(parent_id)
        if parent.requester != requester:
            raise NotAllowed("Only the person who holds this grant can ask to extend it.")
        if parent.state is not State.ACTIVE:
            raise Conflict(f"{parent.id} is {parent.state}, not active; request new access.")
        self.policy.check_duration(parent.role, duration)
        return parent.evolve(
            id=new_request_id(),
            duration=duration,
            reason=self.policy.check_reason(reason),
            state=State.PENDING,
            created_at=self.clock.now(),
            extends=parent.id,
            **_UNDECIDED,
        )

    def _file(self, make: Callable[[], AccessRequest]) -> AccessRequest:
        """Check, then insert unless the requester already has policy.max_pending_per_user
        waiting; either way counted in jitsudo_requests_total."""
        try:
            request = make()
        except (AccessError, InvalidInput):
            self.metrics.request_filed(Outcome.REFUSED)
            raise
        limit = self.policy.max_pending_per_user
        if not self.store.insert(
            request, actor=request.requester, notice=Notice.SUBMITTED, max_pending=limit
        ):
            self.metrics.request_filed(Outcome.LIMITED)
            raise NotAllowed(
                f"You already have {limit} requests waiting for review. Cancel one "
                "(/jitsudo cancel REQUEST_ID) or wait for a decision, then ask again."
            )
        self.metrics.request_filed(Outcome.SUBMITTED)
        self.notices_waiting()
        return request

    @on_request("view")
    def get(self, request_id: str, *, viewer: str) -> AccessRequest:
        request = self.load(request_id)
        if not rules.can_view(request, viewer, self.approvers):
            raise NotAllowed("Only the requester, approvers and admins can see this request.")
        return request

    def mine(self, user: str) -> list[AccessRequest]:
        return self.store.find(requester=user, limit=20)

    def awaiting(self, approver: str) -> list[AccessRequest] | None:
        """Pending requests this approver may decide (not their own, not for their own
        identity); None for non-approvers."""
        if not self.approvers.is_approver(approver):
            return None
        pending = self.store.find(states=[State.PENDING], limit=50)
        return [r for r in pending if rules.may_decide(r, approver, self.approvers)]

    # --- decisions ----------------------------------------------------------

    @on_request("decide")
    def may_decide(self, request_id: str, *, approver: str) -> AccessRequest:
        """Raise unless `approver` may decide this request now (before asking them why)."""
        request = self._decidable(request_id, approver)
        if request.state is not State.PENDING:
            raise Conflict(already(request))
        return request

    @on_request("approve")
    def approve(self, request_id: str, *, approver: str) -> AccessRequest:
        """Approve and grant; exactly one approval wins however many clicks arrive.

        Raises GrantDelayed while the cluster does not answer (the grant is
        retried in the background) and GrantFailed when it cannot be made.
        """
        request = self._decidable(request_id, approver)
        now = self.clock.now()
        approved = self.move_or_conflict(
            request,
            State.APPROVED,
            actor=approver,
            action="approved",
            changes={
                "decided_by": approver,
                "decided_at": now,
                "expires_at": whole_second(now + request.duration),
                "claim_until": now + GRANT_CLAIM,
            },
        )
        return self.granting.complete(approved)

    @on_request("deny")
    def deny(self, request_id: str, *, approver: str, note: str = "") -> AccessRequest:
        request = self._decidable(request_id, approver)
        note = self.policy.check_reason(note, required=False)
        return self.move_or_conflict(
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

    @on_request("cancel")
    def cancel(self, request_id: str, *, actor: str) -> AccessRequest:
        request = self.load(request_id)
        rules.check_can_cancel(request, actor)
        return self.move_or_conflict(
            request,
            State.CANCELLED,
            actor=actor,
            action="cancelled",
            changes={"ended_at": self.clock.now(), "ended_by": actor},
            notice=Notice.CANCELLED,
        )

    # --- endings ------------------------------------------------------------

    @on_request("revoke")
    def revoke(self, request_id: str, *, actor: str) -> AccessRequest:
        """End the grant now; recorded only once the binding is really gone.

        If the delete fails the request stays revoking and the tick retries it;
        the caller gets the revoking request back and can say so.
        """
        request = self.load(request_id)
        rules.check_can_revoke(request, actor, self.approvers)
        if request.state is not State.ACTIVE:
            raise Conflict(f"{request.id} is {request.state}, not active; nothing to revoke.")
        ending = self.ending.begin(request, by=actor, cause=None)
        if ending is None:
            raise Conflict(already(self.load(request.id)))
        return self.ending.finish(ending) or self.load(request.id)

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
        moved = self.move(
            request,
            State.TIMED_OUT,
            actor=SYSTEM,
            action="timed_out",
            changes={"ended_at": self.clock.now()},
            notice=Notice.TIMED_OUT,
        )
        return moved is not None

    # --- helpers ------------------------------------------------------------

    def _decidable(self, request_id: str, approver: str) -> AccessRequest:
        request = self.load(request_id)
        rules.check_can_decide(request, approver, self.approvers)
        return request


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
    "claim_until": None,
    "attempts": 0,
}
