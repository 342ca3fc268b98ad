"""Taking access away: every ending of a grant goes active -> revoking -> expired | revoked.

`begin` notes who ends the grant and why (one conditional UPDATE, so a click,
the tick and the sweep never end one grant twice); `finish` deletes the
binding, and records the end only once the provider confirms it is really
gone. Until then the request stays `revoking`, which the tick retries every
second, so a failed or blocked delete (an API outage, a finalizer someone
added) is never mistaken for an ended grant. Used by bot.service (revoke),
and bot.expiry (expiry, drift, the sweep).
"""

from __future__ import annotations

import logging

from bot.domain import DRIFT_CAUSE, AccessRequest, Notice, State
from bot.errors import ProviderError
from bot.logs import acting
from bot.transitions import SYSTEM, Steps

log = logging.getLogger(__name__)
EXPIRED_CAUSE = "expired"


class Ending(Steps):
    """begin, finish, and `end` = both."""

    def begin(self, request: AccessRequest, *, by: str, cause: str | None) -> AccessRequest | None:
        """Mark an active grant as ending; None if it already is (someone else won).

        `cause` None means a revocation by `by`; otherwise an expiry with that cause.
        """
        return self.move(
            request,
            State.REVOKING,
            actor=by,
            action="revoking" if cause is None else "expiring",
            changes={"ended_by": by, "cause": cause},
        )

    def finish(self, request: AccessRequest) -> AccessRequest | None:
        """Delete and confirm; record the end, or leave it revoking for the next tick."""
        with acting(request_id=request.id, action="revoke" if request.cause is None else "expire"):
            try:
                self.provider.revoke(request.id, request.target)
            except ProviderError as error:
                log.error(
                    "access of %s is NOT gone yet; retrying every tick: %s %s",
                    request.id,
                    error,
                    error.detail,
                )
                return None
        if request.cause is None:
            return self._record(request, State.REVOKED, "revoked", Notice.REVOKED)
        notice = Notice.DRIFTED if request.cause == DRIFT_CAUSE else Notice.EXPIRED
        ended = self._record(request, State.EXPIRED, notice.value, notice)
        if ended is not None and notice is Notice.EXPIRED:
            self.metrics.expired(ended)  # the revocation lag: how late after expires_at
        return ended

    def end(self, request: AccessRequest, *, by: str, cause: str | None) -> AccessRequest | None:
        """Begin and finish; None if another caller is ending it or the delete must be retried."""
        ending = self.begin(request, by=by, cause=cause)
        return self.finish(ending) if ending is not None else None

    def expire(self, request: AccessRequest) -> bool:
        """End a grant whose time is up (or finish one already ending); True once it is gone."""
        if request.state is State.REVOKING:
            return self.finish(request) is not None
        return self.end(request, by=SYSTEM, cause=EXPIRED_CAUSE) is not None

    def _record(
        self, request: AccessRequest, to: State, action: str, notice: Notice
    ) -> AccessRequest | None:
        return self.move(
            request,
            to,
            actor=request.ended_by or SYSTEM,
            action=action,
            changes={"ended_at": self.clock.now()},
            notice=notice,
        )
