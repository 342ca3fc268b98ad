"""The database tables (SQLModel): requests, audit events and their head, outbox, leases.

Only bot.store and bot.auditlog (the audit chain) read and write them; the
Alembic migrations in bot/migrations create them. Kept apart so the store's logic stays readable.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from bot.domain import Notice


def _utc_column(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(
        default=None,
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=nullable, index=index),
    )


class RequestRow(SQLModel, table=True):
    __tablename__ = "requests"

    id: str = Field(primary_key=True, max_length=40)
    requester: str = Field(max_length=64, index=True)
    k8s_user: str = Field(max_length=256)
    provider: str = Field(max_length=32)
    role: str = Field(max_length=256)
    scope: str = Field(max_length=256)
    namespace: str | None = Field(default=None, max_length=256)
    duration_seconds: int
    reason: str = Field(max_length=2000)
    state: str = Field(max_length=16, index=True)
    created_at: datetime = _utc_column(nullable=False)
    decided_by: str | None = Field(default=None, max_length=64)
    decided_at: datetime | None = _utc_column()
    decision_note: str | None = Field(default=None, max_length=2000)
    granted_at: datetime | None = _utc_column()
    expires_at: datetime | None = _utc_column(index=True)
    ended_at: datetime | None = _utc_column()
    ended_by: str | None = Field(default=None, max_length=64)
    cause: str | None = Field(default=None, max_length=2000)
    extends: str | None = Field(default=None, max_length=40, index=True)
    warned: bool = False
    message_channel: str | None = Field(default=None, max_length=64)
    message_ts: str | None = Field(default=None, max_length=64)
    claim_until: datetime | None = _utc_column()
    attempts: int = 0


class LeaseRow(SQLModel, table=True):
    """A lease renewed with the database's clock (epoch seconds); see bot.leader."""

    __tablename__ = "leases"

    name: str = Field(primary_key=True, max_length=64)
    holder: str = Field(default="", max_length=128)
    token: int = Field(default=0, sa_column=sa.Column(sa.BigInteger(), nullable=False))
    expires_epoch: float = 0.0


class AuditEvent(SQLModel, table=True):
    """One audit event, a link of the hash chain (bot.auditlog): `hash` seals every
    other field, `prev_hash` is the hash of event `seq - 1`.

    `id` is only the storage key: the database's counter skips numbers when a
    transaction rolls back, so the chain's position is `seq`, dense from 1.
    """

    __tablename__ = "audit_events"

    id: int | None = Field(default=None, primary_key=True)
    seq: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False, index=True, unique=True))
    at: datetime = _utc_column(nullable=False, index=True)
    actor: str = Field(max_length=64)
    action: str = Field(max_length=32)
    request_id: str = Field(max_length=40, index=True)
    details: str = Field(default="{}", max_length=4000)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    """The one row naming the chain's last event: the writers' lock and the end marker.

    Every append updates it first (bot.auditlog), so appends are serialized on
    this row; verify compares the chain's end with it, so a removed last event
    shows.
    """

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True)
    seq: int = Field(default=0, sa_column=sa.Column(sa.BigInteger(), nullable=False))
    hash: str = Field(max_length=64)


class Audience(StrEnum):
    """Who one outbox row is for: the approval channel's message, or the requester's DMs."""

    CHANNEL = "channel"
    DM = "dm"


# Separate rows per audience, so a dead channel message never holds back a DM
# (and the reverse). Every kind not listed here tells both.
_AUDIENCES: dict[str, tuple[Audience, ...]] = {
    Notice.SUBMITTED: (Audience.CHANNEL,),
    Notice.EXPIRY_WARNING: (Audience.DM,),
    Notice.GRANT_DELAYED: (Audience.CHANNEL,),  # the requester hears once it is live
}


def audiences_of(kind: str) -> tuple[Audience, ...]:
    """The audiences a notice of this kind is delivered to, one outbox row each."""
    return _AUDIENCES.get(kind, (Audience.CHANNEL, Audience.DM))


class OutboxNotice(SQLModel, table=True):
    """A notice for one audience (a message update or a DM); kept until done.

    `delivered_at` is when the row was done with: delivered, or given up on
    (then `last_error` says why).
    """

    __tablename__ = "outbox"

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(max_length=40, index=True)
    kind: str = Field(max_length=32)
    audience: str = Field(max_length=16)
    created_at: datetime = _utc_column(nullable=False)
    due_at: datetime = _utc_column(nullable=False, index=True)
    attempts: int = 0
    delivered_at: datetime | None = _utc_column(index=True)
    last_error: str | None = Field(default=None, max_length=500)
