"""The plumbing every operation shares: load a request, win or lose one conditional move.

Base of bot.service (the verbs users call), bot.granting (making grants,
with retries) and bot.ending (taking them away). Pure core: store, provider,
clock and metrics arrive from the wiring. Every move is logged with the
request's ID, its actor and action (bot.logs.acting), and counted (bot.metrics).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from bot.domain import AccessRequest, Grant, Notice, State
from bot.errors import Conflict, NotFound
from bot.logs import acting
from bot.metrics import Metrics
from bot.ports import AccessProvider, Clock
from bot.store import Store, Transition

SYSTEM = "jitsudo"


class Steps:
    """Store, provider, clock and metrics, plus the two moves every operation makes."""

    def __init__(
        self,
        *,
        store: Store,
        provider: AccessProvider,
        clock: Clock,
        notices_waiting: Callable[[], None] = lambda: None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.provider = provider
        self.clock = clock
        self.notices_waiting = notices_waiting
        self.metrics = metrics or Metrics()

    def load(self, request_id: str) -> AccessRequest:
        request = self.store.get(request_id)
        if request is None:
            raise NotFound(f"No request {request_id}. Check the ID with /jitsudo list.")
        return request

    def move(
        self,
        request: AccessRequest,
        to: State,
        *,
        actor: str,
        action: str,
        changes: dict[str, Any],
        notice: Notice | None = None,
        details: dict[str, Any] | None = None,
    ) -> AccessRequest | None:
        """One conditional transition; None when someone else moved the request first."""
        move = Transition(
            to=to,
            actor=actor,
            at=self.clock.now(),
            action=action,
            changes=changes,
            notice=notice,
            details=details,
        )
        with acting(request_id=request.id, actor=actor, action=action):
            moved = self.store.transition(request.id, move)
        if moved is None:
            return None
        self.metrics.moved(moved)
        if notice:
            self.notices_waiting()
        return moved

    def move_or_conflict(self, request: AccessRequest, to: State, **kwargs: Any) -> AccessRequest:
        """The same, telling the loser of a race what happened instead."""
        moved = self.move(request, to, **kwargs)
        if moved is None:
            raise Conflict(already(self.load(request.id)))
        return moved


def grant_of(request: AccessRequest, *, expires_at: datetime | None = None) -> Grant:
    """What the provider is asked to create: the approved request, or a preview of it."""
    until = expires_at or request.expires_at
    assert until is not None  # set by the approval, or given for a preview
    return Grant(
        request_id=request.id,
        user=request.k8s_user,
        role=request.role,
        target=request.target,
        expires_at=until,
    )


def already(request: AccessRequest) -> str:
    """Why a lost race changed nothing, in the words the loser should see."""
    who = f" by {request.decided_by}" if request.decided_by else ""
    if request.state in (State.APPROVED, State.ACTIVE):
        return f"{request.id} was already approved{who}."
    if request.state is State.DENIED:
        return f"{request.id} was already denied{who}."
    return f"{request.id} is {request.state.replace('_', ' ')}; nothing to do."
