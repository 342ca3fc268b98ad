"""The audit log as a hash chain: how an event is sealed, appended and read back.

Called by bot.store (`append`, inside the transaction of every state change),
by bot.audit (verify and export) and by migration 0004 (which seals the events
written before the chain existed).

What is hashed. An event's `hash` is SHA-256 over the canonical encoding of
all of its fields: its position `seq`, `at`, `actor`, `action`, `request_id`,
`details` (the JSON text exactly as stored) and `prev_hash` (the hash of event
`seq - 1`; GENESIS for seq 1), plus the format version `v`. The encoding is a
JSON object with sorted keys, no whitespace and ASCII-only escapes, in which
`seq` and `v` are JSON integers and everything else is a JSON string, and `at`
is UTC with microseconds in one fixed form (`2026-11-27T12:00:00.000000Z`).
It is unambiguous: every value is typed and delimited (a string cannot spill
into the next field, 17 is not "17"), the keys and their order are fixed, and
one instant has exactly one text; so two different events never encode alike,
and one event always encodes the same, on any database.

The serialization point. Every append starts with
`UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash`, which
takes the lock, reads the previous hash and claims the next position in one
statement, on both databases:

- PostgreSQL: the UPDATE locks the head row until the transaction commits. A
  second writer's UPDATE waits and then, under READ COMMITTED, re-reads the
  committed row, so it gets the new seq and hash: two replicas can never both
  link to the same event. A `SELECT ... FOR UPDATE` on the *last event* would
  not do: the waiter gets back the row it waited for, which is no longer the
  last, and forks the chain (and an empty table has no row to lock). A
  `pg_advisory_xact_lock` would serialize too, but only on PostgreSQL and only
  by convention; the head row is needed anyway, to show a removed last event.
- SQLite allows one writer at a time; the head UPDATE is a write, so the read
  of the previous hash happens under the write lock. Every audited transaction
  begins with a write (its conditional UPDATE or INSERT), so it never holds an
  older snapshot when it asks for the lock.

The store appends as the last step of a transaction it already runs, so the
lock is held only for the event's and the outbox's INSERTs and the commit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.tables import AuditEvent, AuditHead

FORMAT = 1
GENESIS = "0" * 64  # the prev_hash of seq 1
HEAD_ID = 1
PAGE = 1000

_HEAD = AuditHead.__table__  # type: ignore[attr-defined]


class ChainHeadMissing(RuntimeError):
    """The audit_head row is gone: no event can be chained until it is restored."""


def utc_text(at: datetime) -> str:
    """The one text of an instant: UTC, microseconds, `Z` (naive means UTC, as SQLite gives)."""
    moment = at if at.tzinfo is None else at.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds") + "Z"


def canonical(
    *,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    request_id: str,
    details: str,
    prev_hash: str,
) -> bytes:
    """The bytes that are hashed for one event."""
    if type(seq) is not int:  # bool is an int; a Decimal would encode differently
        raise TypeError(f"seq must be an int, not {type(seq).__name__}")
    document: dict[str, object] = {
        "v": FORMAT,
        "seq": seq,
        "at": utc_text(at),
        "actor": actor,
        "action": action,
        "request_id": request_id,
        "details": details,
        "prev_hash": prev_hash,
    }
    for name, value in document.items():
        if name not in ("v", "seq") and not isinstance(value, str):
            raise TypeError(f"{name} must be a string, not {type(value).__name__}")
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return text.encode("ascii")


def seal(**fields: Any) -> str:
    """SHA-256 of the canonical encoding of these fields, as 64 lowercase hex digits."""
    return hashlib.sha256(canonical(**fields)).hexdigest()


def digest(event: AuditEvent, *, seq: int | None = None) -> str:
    """The hash `event` should carry; `seq` overrides its position (verify tests shifts)."""
    return seal(
        seq=event.seq if seq is None else seq,
        at=event.at,
        actor=event.actor,
        action=event.action,
        request_id=event.request_id,
        details=event.details,
        prev_hash=event.prev_hash,
    )


def append(
    session: Session,
    request_id: str,
    *,
    actor: str,
    action: str,
    at: datetime,
    details: str,
) -> AuditEvent:
    """Chain one event into the session's transaction; the head stays locked until commit."""
    advance = (
        sa.update(_HEAD)
        .where(_HEAD.c.id == HEAD_ID)
        .values(seq=_HEAD.c.seq + 1)
        .returning(_HEAD.c.seq, _HEAD.c.hash)
    )
    head = session.execute(advance).one_or_none()
    if head is None:
        raise ChainHeadMissing(
            "the audit_head row is missing, so no audit event can be written; "
            "run `jitsudo-bot audit verify` and restore the database from a backup"
        )
    moment = at.astimezone(UTC) if at.tzinfo is not None else at.replace(tzinfo=UTC)
    event = AuditEvent(
        seq=int(head.seq),
        prev_hash=str(head.hash),
        at=moment,
        actor=actor,
        action=action,
        request_id=request_id,
        details=details,
        hash="",
    )
    event.hash = digest(event)
    session.execute(sa.update(_HEAD).where(_HEAD.c.id == HEAD_ID).values(hash=event.hash))
    session.add(event)
    return event


def head(engine: Engine) -> AuditHead | None:
    with Session(engine) as session:
        return session.get(AuditHead, HEAD_ID)


def events(
    engine: Engine,
    *,
    up_to: int | None = None,
    since: datetime | None = None,
    request_id: str | None = None,
) -> Iterator[AuditEvent]:
    """Events in chain order, a page at a time (keyset on seq: no long transaction)."""
    after: int | None = None
    while True:
        query = select(AuditEvent).order_by(col(AuditEvent.seq)).limit(PAGE)
        if after is not None:
            query = query.where(col(AuditEvent.seq) > after)
        if up_to is not None:
            query = query.where(col(AuditEvent.seq) <= up_to)
        if since is not None:
            query = query.where(col(AuditEvent.at) >= since.astimezone(UTC))
        if request_id is not None:
            query = query.where(col(AuditEvent.request_id) == request_id)
        with Session(engine) as session:
            page = list(session.exec(query))
        yield from page
        if len(page) < PAGE:
            return
        after = page[-1].seq


def beyond_head(engine: Engine) -> list[AuditEvent]:
    """Events past the head's seq, read with the head in one statement (one snapshot)."""
    last = sa.select(_HEAD.c.seq).where(_HEAD.c.id == HEAD_ID).scalar_subquery()
    query = select(AuditEvent).where(col(AuditEvent.seq) > last).order_by(col(AuditEvent.seq))
    with Session(engine) as session:
        return list(session.exec(query.limit(PAGE)))
