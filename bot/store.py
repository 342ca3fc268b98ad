"""Persistence: the only code that reads and writes the tables (bot.tables).

Every state change is one conditional UPDATE (`WHERE id = :id AND state =
:expected`) in a transaction that also appends the audit event and the outbox
notice, so a double click, a retry or a second replica can never act twice and
no notice is lost. Called by the service and the notice deliverer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, col, create_engine, select

from bot import auditlog
from bot.domain import AccessRequest, State, source_of
from bot.tables import (
    Audience,
    AuditEvent,
    LeaseRow,
    OutboxNotice,
    RequestRow,
    audiences_of,
)

__all__ = [
    "Audience",
    "AuditEvent",
    "LeaseRow",
    "OutboxNotice",
    "RequestRow",
    "Store",
    "Transition",
    "audiences_of",
    "make_engine",
]


_REQUEST_FIELDS = [f.name for f in fields(AccessRequest)]


def _utc(value: datetime | None) -> datetime | None:
    """SQLite forgets the zone; every datetime in the core is aware UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _to_domain(row: RequestRow) -> AccessRequest:
    values: dict[str, Any] = {}
    for name in _REQUEST_FIELDS:
        if name == "duration":
            values[name] = timedelta(seconds=row.duration_seconds)
        elif name == "state":
            values[name] = State(row.state)
        else:
            value = getattr(row, name)
            values[name] = _utc(value) if isinstance(value, datetime) else value
    return AccessRequest(**values)


def _to_columns(changes: dict[str, Any]) -> dict[str, Any]:
    columns = dict(changes)
    if "duration" in columns:
        columns["duration_seconds"] = int(columns.pop("duration").total_seconds())
    if "state" in columns:
        columns["state"] = str(columns["state"])
    return {name: _fit(RequestRow, name, value) for name, value in columns.items()}


def _fit(table: type[SQLModel], column: str, value: Any) -> Any:
    """Bound a text to its column: PostgreSQL refuses an over-long VARCHAR outright,
    and one refused UPDATE (a 10 KB error text) must never stall a state change."""
    length = getattr(table.__table__.columns[column].type, "length", None)  # type: ignore[attr-defined]
    if isinstance(value, str) and length is not None and len(value) > length:
        return value[: length - 1] + "…"
    return value


@dataclass(frozen=True)
class Transition:
    """One audited state change: who moved the request where, and what else changed."""

    to: State
    actor: str
    at: datetime
    action: str
    changes: dict[str, Any]
    notice: str | None = None
    details: dict[str, Any] | None = None

    @property
    def expected(self) -> State:
        """The state the request must still be in for this change to apply."""
        return source_of(self.to)


def make_engine(url: str) -> Engine:
    """An engine with SQLite set up for concurrent use (WAL, busy_timeout)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    if not url.startswith("postgresql"):
        return create_engine(url, pool_pre_ping=True)
    # TCP keepalives: a connection whose peer vanished is noticed and replaced within
    # about 25 s instead of hanging for hours. (Leadership does not depend on it: the
    # lease in bot.leader runs out on its own.)
    keepalives = {
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "connect_timeout": 10,
    }
    return create_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=10, connect_args=keepalives
    )


class Store:
    """Reads and conditional writes of requests, audit events and the outbox."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))

    def insert(
        self,
        request: AccessRequest,
        *,
        actor: str,
        notice: str | None,
        max_pending: int | None = None,
    ) -> bool:
        """Store a new request with its `submitted` audit event and first notice.

        With `max_pending`, only if the requester has fewer pending requests: one
        INSERT ... SELECT ... WHERE count < max, serialized per requester on
        PostgreSQL, so a burst of submissions cannot slip past the limit.
        """
        values = _to_columns(_row_values(request))
        with self._session() as session:
            if max_pending is None:
                session.add(RequestRow(**values))
            elif not self._insert_if_room(session, values, max_pending):
                session.rollback()
                return False
            _append(
                session,
                request.id,
                actor=actor,
                action="submitted",
                at=request.created_at,
                notice=notice,
                details={
                    "role": request.role,
                    "scope": request.scope,
                    "duration": int(request.duration.total_seconds()),
                },
            )
            session.commit()
        return True

    def _insert_if_room(self, session: Session, values: dict[str, Any], limit: int) -> bool:
        table = RequestRow.__table__  # type: ignore[attr-defined]
        if self.engine.dialect.name == "postgresql":
            session.execute(
                sa.text("SELECT pg_advisory_xact_lock(hashtext(:who))"),
                {"who": values["requester"]},
            )
        pending = (
            sa.select(sa.func.count())
            .select_from(table)
            .where(table.c.requester == values["requester"], table.c.state == "pending")
            .scalar_subquery()
        )
        names = [column.name for column in table.columns if column.name in values]
        row = sa.select(*[sa.literal(values[n], table.c[n].type) for n in names])
        statement = sa.insert(table).from_select(names, row.where(pending < limit))
        # RETURNING, not rowcount: psycopg reports -1 for INSERT ... SELECT.
        return session.execute(statement.returning(table.c.id)).first() is not None

    def claim(self, request_id: str, *, until: datetime, now: datetime) -> bool:
        """Take an approved request's grant work if nobody's claim is running; see granting."""
        statement = (
            sa.update(RequestRow)
            .where(
                col(RequestRow.id) == request_id,
                col(RequestRow.state) == str(State.APPROVED),
                sa.or_(col(RequestRow.claim_until).is_(None), col(RequestRow.claim_until) <= now),
            )
            .values(claim_until=until)
        )
        with self._session() as session:
            won = session.execute(statement).rowcount == 1  # type: ignore[attr-defined]
            session.commit()
        return bool(won)

    def get(self, request_id: str) -> AccessRequest | None:
        with self._session() as session:
            row = session.get(RequestRow, request_id)
            return _to_domain(row) if row else None

    def transition(self, request_id: str, move: Transition) -> AccessRequest | None:
        """Apply `move` if the request is still in `move.expected`; None if someone else won."""
        values = _to_columns({**move.changes, "state": move.to})
        statement = (
            sa.update(RequestRow)
            .where(col(RequestRow.id) == request_id, col(RequestRow.state) == str(move.expected))
            .values(**values)
        )
        with self._session() as session:
            if session.execute(statement).rowcount != 1:  # type: ignore[attr-defined]
                session.rollback()
                return None
            details = {"from": str(move.expected), "to": str(move.to), **(move.details or {})}
            _append(
                session,
                request_id,
                actor=move.actor,
                action=move.action,
                at=move.at,
                notice=move.notice,
                details=details,
            )
            session.commit()
        return self.get(request_id)

    def update_fields(
        self,
        request_id: str,
        *,
        expected: State,
        changes: dict[str, Any],
        audit: tuple[str, str, datetime] | None = None,
        notice: str | None = None,
        only_if: dict[str, Any] | None = None,
    ) -> bool:
        """A conditional change that keeps the state (warned flag, new expiry).

        `only_if` adds column equalities to the WHERE, e.g. {"warned": False}.
        """
        conditions = [col(RequestRow.id) == request_id, col(RequestRow.state) == str(expected)]
        conditions += [
            getattr(RequestRow, name) == value for name, value in (only_if or {}).items()
        ]
        statement = sa.update(RequestRow).where(*conditions).values(**_to_columns(changes))
        with self._session() as session:
            if session.execute(statement).rowcount != 1:  # type: ignore[attr-defined]
                session.rollback()
                return False
            if audit:
                actor, action, at = audit
                _append(
                    session,
                    request_id,
                    actor=actor,
                    action=action,
                    at=at,
                    notice=notice,
                    details={k: _jsonable(v) for k, v in changes.items()},
                )
            session.commit()
        return True

    def set_message(self, request_id: str, *, channel: str, ts: str) -> None:
        """Remember where the approval message lives so it can be updated in place."""
        with self._session() as session:
            session.execute(
                sa.update(RequestRow)
                .where(col(RequestRow.id) == request_id)
                .values(message_channel=channel, message_ts=ts)
            )
            session.commit()

    def message_of(self, request_id: str) -> tuple[str, str] | None:
        with self._session() as session:
            row = session.get(RequestRow, request_id)
            if row is None or not row.message_channel or not row.message_ts:
                return None
            return row.message_channel, row.message_ts

    def find(
        self,
        *,
        states: Sequence[State] = (),
        requester: str | None = None,
        expires_before: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 500,
    ) -> list[AccessRequest]:
        query = select(RequestRow)
        if states:
            query = query.where(col(RequestRow.state).in_([str(s) for s in states]))
        if requester is not None:
            query = query.where(col(RequestRow.requester) == requester)
        if expires_before is not None:
            query = query.where(col(RequestRow.expires_at) <= expires_before)
        if created_before is not None:
            query = query.where(col(RequestRow.created_at) <= created_before)
        query = query.order_by(col(RequestRow.created_at).desc()).limit(limit)
        with self._session() as session:
            return [_to_domain(row) for row in session.exec(query)]

    def count_by_state(self, states: Iterable[State]) -> dict[State, int]:
        """How many requests are in each of `states` now (states with none are left out)."""
        query = (
            select(col(RequestRow.state), sa.func.count())
            .where(col(RequestRow.state).in_([str(s) for s in states]))
            .group_by(col(RequestRow.state))
        )
        with self._session() as session:
            return {State(state): int(count) for state, count in session.exec(query)}

    def audit_trail(self, request_id: str | None = None) -> list[AuditEvent]:
        """Events in chain order (seq), for one request or all."""
        return list(auditlog.events(self.engine, request_id=request_id))

    # --- outbox -------------------------------------------------------------

    def due_notices(self, now: datetime, *, limit: int = 50) -> list[OutboxNotice]:
        query = (
            select(OutboxNotice)
            .where(col(OutboxNotice.delivered_at).is_(None), col(OutboxNotice.due_at) <= now)
            .order_by(col(OutboxNotice.id))
            .limit(limit)
        )
        with self._session() as session:
            return list(session.exec(query))

    def mark_delivered(self, notice_id: int, at: datetime) -> bool:
        """Conditional, so two deliverers never both count one notice as theirs."""
        statement = (
            sa.update(OutboxNotice)
            .where(col(OutboxNotice.id) == notice_id, col(OutboxNotice.delivered_at).is_(None))
            .values(delivered_at=at)
        )
        with self._session() as session:
            won = session.execute(statement).rowcount == 1  # type: ignore[attr-defined]
            session.commit()
            return bool(won)

    def give_up(self, notice_id: int, *, at: datetime, error: str) -> bool:
        """Mark a notice done without delivering it, keeping the reason; conditional too."""
        statement = (
            sa.update(OutboxNotice)
            .where(col(OutboxNotice.id) == notice_id, col(OutboxNotice.delivered_at).is_(None))
            .values(delivered_at=at, attempts=OutboxNotice.attempts + 1, last_error=error[:500])
        )
        with self._session() as session:
            won = session.execute(statement).rowcount == 1  # type: ignore[attr-defined]
            session.commit()
            return bool(won)

    def postpone(self, notice_id: int, *, until: datetime, error: str) -> None:
        with self._session() as session:
            session.execute(
                sa.update(OutboxNotice)
                .where(col(OutboxNotice.id) == notice_id)
                .values(due_at=until, attempts=OutboxNotice.attempts + 1, last_error=error[:500])
            )
            session.commit()


def _row_values(request: AccessRequest) -> dict[str, Any]:
    return {name: getattr(request, name) for name in _REQUEST_FIELDS}


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return int(value.total_seconds())
    return value


def _bounded_json(details: dict[str, Any], limit: int = 4000) -> str:
    """Audit details as JSON that fits its column: long values are cut, keys kept."""
    values = {k: _jsonable(v) for k, v in details.items()}
    text = json.dumps(values)
    share = max(limit // (len(values) + 1) - 40, 40)
    while len(text) > limit and share >= 40:
        values = {
            k: (v[:share] + "…" if isinstance(v, str) and len(v) > share else v)
            for k, v in values.items()
        }
        text = json.dumps(values)
        share //= 2
    return text if len(text) <= limit else json.dumps({"truncated": True})


def _append(
    session: Session,
    request_id: str,
    *,
    actor: str,
    action: str,
    at: datetime,
    notice: str | None,
    details: dict[str, Any],
) -> None:
    """The audit event and the outbox rows travel in the state change's transaction.

    The event is chained (bot.auditlog) under the audit head's lock; callers
    append last, right before the commit, so that lock is held briefly.
    """
    auditlog.append(
        session,
        request_id,
        actor=_fit(AuditEvent, "actor", actor),
        action=action,
        at=at,
        details=_bounded_json(details),
    )
    if not notice:
        return
    for audience in audiences_of(notice):
        session.add(
            OutboxNotice(
                request_id=request_id, kind=notice, audience=audience, created_at=at, due_at=at
            )
        )
