"""Making an approved request real: create the binding (or move an extension's expiry).

Exactly one caller works on a grant at a time: the approval takes a claim on
the request (`claim_until`), and the tick resumes only requests whose claim
has run out, so a crashed granter's work is picked up and a slow one is never
duplicated. A transient failure (429, 5xx, a timeout, a dropped connection)
keeps the request approved and "granting, retrying" with backoff for a bounded
time; only a permanent answer, or the end of that time with no binding in the
cluster, makes it failed. A request is never recorded failed while its binding
exists. Used by bot.service (approve) and bot.expiry (resume).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from bot.domain import AccessRequest, Notice, State
from bot.errors import GrantDelayed, GrantFailed, ProviderError
from bot.logs import acting
from bot.transitions import SYSTEM, Steps, grant_of

log = logging.getLogger(__name__)

# Longer than one grant attempt can take: a create and a read, each bounded by
# the provider's timeouts (3 s connect + 10 s read).
GRANT_CLAIM = timedelta(seconds=40)
RETRY_WINDOW = timedelta(minutes=10)
MAX_BACKOFF = timedelta(seconds=30)


class Granting(Steps):
    """complete (right after approval), resume (by the tick), and what they share."""

    def complete(self, request: AccessRequest) -> AccessRequest:
        """Grant a claimed approved request, or apply it if it is an extension."""
        with acting(request_id=request.id, action="grant"):
            if request.extends:
                return self._apply_extension(request)
            return self._grant(request)

    def resume(self, request: AccessRequest) -> AccessRequest | None:
        """Claim an approved request whose claim ran out, then complete it; None if taken."""
        now = self.clock.now()
        if not self.store.claim(request.id, until=now + GRANT_CLAIM, now=now):
            return None
        return self.complete(request)

    def _grant(self, request: AccessRequest) -> AccessRequest:
        try:
            self.provider.grant(grant_of(request))
        except ProviderError as error:
            return self._failed_attempt(request, error)
        return self._activate(request)

    def _activate(self, request: AccessRequest) -> AccessRequest:
        return self.move_or_conflict(
            request,
            State.ACTIVE,
            actor=request.decided_by or SYSTEM,
            action="granted",
            changes={"granted_at": self.clock.now(), "cause": None, "claim_until": None},
            notice=Notice.GRANTED,
        )

    def _failed_attempt(self, request: AccessRequest, error: ProviderError) -> AccessRequest:
        log.warning("grant of %s failed: %s %s", request.id, error, error.detail)
        if error.retryable and self._within_window(request):
            raise self._retry_later(request, error)
        try:
            if self.provider.is_active(grant_of(request)):
                return self._activate(request)  # an earlier attempt did create it
        except ProviderError as check:
            if check.retryable:  # cannot tell whether it exists: never guess "failed"
                raise self._retry_later(request, check) from None
        return self._fail(request, str(error))

    def _within_window(self, request: AccessRequest) -> bool:
        now = self.clock.now()
        start = request.decided_at or now
        ends = min(start + RETRY_WINDOW, request.expires_at or start + RETRY_WINDOW)
        return now < ends

    def _retry_later(self, request: AccessRequest, error: ProviderError) -> GrantDelayed:
        """Keep the claim until the next attempt; tell the channel once."""
        attempts = request.attempts + 1
        backoff = min(timedelta(seconds=2 ** min(attempts, 10)), MAX_BACKOFF)
        self.store.update_fields(
            request.id,
            expected=State.APPROVED,
            changes={
                "attempts": attempts,
                "claim_until": self.clock.now() + backoff,
                "cause": f"retrying: {error}",
            },
            audit=(SYSTEM, "grant_retry", self.clock.now()) if attempts == 1 else None,
            notice=Notice.GRANT_DELAYED if attempts == 1 else None,
        )
        self.notices_waiting()
        return GrantDelayed(
            f"Approved, but the cluster did not answer ({error}); jitsudo keeps trying and "
            "tells the requester when access is live.",
            request=self.load(request.id),
        )

    def _fail(self, request: AccessRequest, cause: str) -> AccessRequest:
        failed = self.move_or_conflict(
            request,
            State.FAILED,
            actor=request.decided_by or SYSTEM,
            action="grant_failed",
            changes={"cause": cause, "claim_until": None},
            notice=Notice.FAILED,
        )
        raise GrantFailed(f"Approved, but the grant failed: {cause}", request=failed)

    def _apply_extension(self, extension: AccessRequest) -> AccessRequest:
        """Move the parent's expiry: patch the annotation first, then the database.

        The annotation goes first so the sweeper never sees a binding whose
        annotation says it expired while the database says it has not.
        """
        assert extension.extends is not None and extension.expires_at is not None
        parent = self.load(extension.extends)
        new_expiry = _later(extension.expires_at, parent.expires_at)
        try:
            if parent.state is not State.ACTIVE:
                raise ProviderError(f"{parent.id} is {parent.state}; there is nothing to extend")
            self.provider.extend(parent.id, parent.target, new_expiry)
        except ProviderError as error:
            if error.retryable and self._within_window(extension):
                raise self._retry_later(extension, error) from None
            return self._fail(extension, str(error))
        moved = self.store.update_fields(
            parent.id,
            expected=State.ACTIVE,
            changes={"expires_at": new_expiry, "warned": False},
            audit=(extension.decided_by or SYSTEM, "extended", self.clock.now()),
        )
        if not moved:
            return self._fail(extension, f"{parent.id} ended before the extension was applied")
        return self.move_or_conflict(
            extension,
            State.EXTENDED,
            actor=extension.decided_by or SYSTEM,
            action="extension_applied",
            changes={"expires_at": new_expiry, "granted_at": self.clock.now(), "cause": None},
            notice=Notice.EXTENDED,
        )


def _later(candidate: datetime, current: datetime | None) -> datetime:
    return max(candidate, current or candidate)
