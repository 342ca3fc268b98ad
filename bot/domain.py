"""Pure values of the access-request lifecycle: IDs, states, durations, targets.

Everything here is free of I/O and of Slack and Kubernetes; the service, the
store and every adapter build on these types.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from ulid import ULID

REQUEST_ID_PREFIX = "req_"
CLUSTER_WIDE = "*"
DRIFT_CAUSE = "the binding was deleted outside jitsudo"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_REQUEST_ID = re.compile(rf"^req_[{_CROCKFORD}]{{26}}$", re.IGNORECASE)


class State(StrEnum):
    """Where a request is in its life; see TRANSITIONS for the legal moves."""

    PENDING = "pending"
    APPROVED = "approved"
    ACTIVE = "active"
    REVOKING = "revoking"  # ending: deleting the binding; final once it is really gone
    EXPIRED = "expired"
    REVOKED = "revoked"
    DENIED = "denied"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    FAILED = "failed"
    EXTENDED = "extended"  # an approved extension, applied to the grant it extends

    @property
    def is_final(self) -> bool:
        return not TRANSITIONS[self]


TRANSITIONS: dict[State, frozenset[State]] = {
    State.PENDING: frozenset({State.APPROVED, State.DENIED, State.CANCELLED, State.TIMED_OUT}),
    State.APPROVED: frozenset({State.ACTIVE, State.FAILED, State.EXTENDED}),
    State.ACTIVE: frozenset({State.REVOKING}),
    State.REVOKING: frozenset({State.EXPIRED, State.REVOKED}),
    State.EXPIRED: frozenset(),
    State.REVOKED: frozenset(),
    State.DENIED: frozenset(),
    State.CANCELLED: frozenset(),
    State.TIMED_OUT: frozenset(),
    State.FAILED: frozenset(),
    State.EXTENDED: frozenset(),
}


def source_of(to: State) -> State:
    """The one state a request reaches `to` from: the lifecycle never merges paths."""
    [source] = [state for state, targets in TRANSITIONS.items() if to in targets]
    return source


class InvalidInput(ValueError):
    """User input that cannot be accepted; the message says what and how to fix it."""


def new_request_id() -> str:
    """`req_<ULID>`, uppercase Crockford as in the seed's `req_01J8KZ...`."""
    return f"{REQUEST_ID_PREFIX}{ULID()}"


def parse_request_id(text: str) -> str:
    """Accept an ID in any case and return its canonical (uppercase ULID) form."""
    candidate = text.strip()
    if not _REQUEST_ID.match(candidate):
        raise InvalidInput(
            f"`{candidate[:40]}` is not a request ID; IDs look like req_01J8KZ4Q2M3N5P6R7S8T9VWXYZ."
        )
    return REQUEST_ID_PREFIX + candidate[len(REQUEST_ID_PREFIX) :].upper()


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|m|s)")
_UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1}
# The hard bounds of every duration: requests, extensions and config alike.
# A year is far beyond any sensible grant or interval, yet far below what breaks
# arithmetic (datetime, timedelta) or PostgreSQL's 32-bit duration_seconds column.
MAX_DURATION = timedelta(hours=8760)
# The store and the expires-at annotation keep whole seconds, so less rounds to nothing.
MIN_DURATION = timedelta(seconds=1)


def parse_duration(text: str) -> timedelta:
    """Parse a Go-style duration ("90s", "15m", "1h30m") as the seed's config uses.

    The result is whole seconds within [MIN_DURATION, MAX_DURATION]; anything
    else is refused with a message saying why, never an OverflowError.
    """
    seconds = _sum_of_parts(text)
    shown = text.strip()[:40]
    if not math.isfinite(seconds) or seconds > MAX_DURATION.total_seconds():
        raise InvalidInput(
            f"`{shown}` is longer than 8760h (365 days), the longest duration jitsudo "
            "accepts; give 8760h or less, e.g. 1h or 30m."
        )
    if seconds < MIN_DURATION.total_seconds():
        raise InvalidInput(
            f"`{shown}` is shorter than 1s, the shortest duration; use e.g. 30s, 15m or 1h."
        )
    return timedelta(seconds=round(seconds))


def _sum_of_parts(text: str) -> float:
    """The total in seconds of "1h30m"-style text; inf if a number is too large for a float."""
    raw = text.strip().lower()
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(raw):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if not raw or position != len(raw):
        raise InvalidInput(
            f"`{text[:40]}` is not a duration; use a number with h, m or s, e.g. 30m, 1h, 1h30m."
        )
    return total


def whole_second(moment: datetime) -> datetime:
    """Round up to a whole second: the expires-at annotation has one-second precision,
    so the database and the cluster must agree on exactly that instant."""
    if moment.microsecond == 0:
        return moment
    return moment.replace(microsecond=0) + timedelta(seconds=1)


def format_duration(value: timedelta) -> str:
    """The inverse of parse_duration, shortest form: 1h30m, 15m, 90s -> 1m30s."""
    seconds = int(value.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "".join(parts) or "0s"


@dataclass(frozen=True)
class Target:
    """Where a grant applies: a namespace, or the whole cluster when namespace is None."""

    namespace: str | None

    @property
    def cluster_wide(self) -> bool:
        return self.namespace is None

    def describe(self) -> str:
        return "cluster-wide" if self.namespace is None else f"namespace {self.namespace}"


def resolve_target(scope: str, *, default_namespace: str) -> Target:
    """The seed's scope rule, as its docs promise.

    "*" is always cluster-wide (upstream's code turns it into a RoleBinding in
    default_namespace, contradicting its docs); an empty scope means
    default_namespace, and cluster-wide only when that is empty too.
    """
    scope = scope.strip()
    if scope == CLUSTER_WIDE:
        return Target(namespace=None)
    if not scope:
        return Target(namespace=default_namespace or None)
    return Target(namespace=scope)


@dataclass(frozen=True)
class AccessRequest:
    """One request for temporary access, as stored."""

    id: str
    requester: str
    k8s_user: str
    provider: str
    role: str
    scope: str
    namespace: str | None
    duration: timedelta
    reason: str
    state: State
    created_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_note: str | None = None
    granted_at: datetime | None = None
    expires_at: datetime | None = None
    ended_at: datetime | None = None
    ended_by: str | None = None
    cause: str | None = None
    extends: str | None = None
    warned: bool = False
    claim_until: datetime | None = None
    attempts: int = 0

    @property
    def target(self) -> Target:
        return Target(namespace=self.namespace)

    def evolve(self, **changes: object) -> AccessRequest:
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Grant:
    """What a provider is asked to create: the role bound to a user until expires_at."""

    request_id: str
    user: str
    role: str
    target: Target
    expires_at: datetime


@dataclass(frozen=True)
class ManagedBinding:
    """A binding found in the cluster carrying the managed label.

    The label is only a claim: anyone who can write RBAC in a namespace can copy
    it. `request_id` comes from the name alone (`jitsudo-<id>`), and the binding
    counts as that request's only if `belongs_to` says so.
    """

    name: str
    namespace: str | None
    expires_at: datetime | None
    request_id: str | None = None
    role: str | None = None  # the roleRef's name when it is a ClusterRole
    subjects: tuple[tuple[str, str], ...] = ()  # (kind, name)

    def belongs_to(self, request: AccessRequest) -> bool:
        """Name, kind and namespace, subject and role all match the request's grant."""
        return (
            self.request_id == request.id
            and self.namespace == request.namespace
            and self.role == request.role
            and self.subjects == (("User", request.k8s_user),)
        )


@dataclass(frozen=True)
class SweepResult:
    """Counts from one sweep, for logs and metrics."""

    revoked: int = 0
    drifted: int = 0
    failed: int = 0
    foreign: int = 0  # labelled bindings that belong to no request (removed only when stale)


class Notice(StrEnum):
    """What the people involved must be told after a change (delivered via the outbox)."""

    SUBMITTED = "submitted"
    GRANTED = "granted"
    DENIED = "denied"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REVOKED = "revoked"
    EXPIRED = "expired"
    DRIFTED = "drifted"
    TIMED_OUT = "timed_out"
    EXPIRY_WARNING = "expiry_warning"
    EXTENDED = "extended"
    GRANT_DELAYED = "grant_delayed"  # the cluster did not answer; the grant is being retried
