"""The audit log becomes a hash chain: `seq`, `prev_hash` and `hash`, and `audit_head`.

Each event gets its position in the chain (`seq`, dense from 1), the hash of
the event before it and its own hash over every field (bot.auditlog says what
is hashed and why the encoding is unambiguous). `audit_head` is one row naming
the last event: every writer locks it to append, and verify compares the end
of the chain with it.

Existing events are sealed in the order they were written (by id), so an
upgraded database verifies. The hashing is bot.auditlog's format 1: verify
must always be able to check format-1 events, so that code stays, and this
migration can rely on it.

Downgrade drops the chain (the events themselves stay).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from bot.auditlog import GENESIS, HEAD_ID, seal

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_BATCH = 1000
_HASHED = ("at", "actor", "action", "request_id", "details")  # besides seq and prev_hash
_EVENTS = sa.table(
    "audit_events",
    sa.column("id", sa.Integer()),
    sa.column("at", sa.DateTime(timezone=True)),
    sa.column("actor", sa.String()),
    sa.column("action", sa.String()),
    sa.column("request_id", sa.String()),
    sa.column("details", sa.String()),
    sa.column("seq", sa.BigInteger()),
    sa.column("prev_hash", sa.String()),
    sa.column("hash", sa.String()),
)


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("prev_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("hash", sa.String(64), nullable=True))
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    seq, last = _seal_existing(op.get_bind())
    op.bulk_insert(head, [{"id": HEAD_ID, "seq": seq, "hash": last}])
    with op.batch_alter_table("audit_events") as batch:
        batch.alter_column("seq", existing_type=sa.BigInteger(), nullable=False)
        batch.alter_column("prev_hash", existing_type=sa.String(64), nullable=False)
        batch.alter_column("hash", existing_type=sa.String(64), nullable=False)
        batch.create_index("ix_audit_events_seq", ["seq"], unique=True)


def _seal_existing(connection: sa.Connection) -> tuple[int, str]:
    """Chain every event in id order; returns the last seq and hash (0, GENESIS if none)."""
    seq, last, after = 0, GENESIS, -1
    fields = [_EVENTS.c.id, *(_EVENTS.c[name] for name in _HASHED)]
    while True:
        rows = connection.execute(
            sa.select(*fields).where(_EVENTS.c.id > after).order_by(_EVENTS.c.id).limit(_BATCH)
        ).all()
        if not rows:
            return seq, last
        sealed: list[dict[str, Any]] = []
        for row in rows:
            seq += 1
            hashed = seal(seq=seq, prev_hash=last, **{name: getattr(row, name) for name in _HASHED})
            sealed.append({"row_id": row.id, "new_seq": seq, "new_prev": last, "new_hash": hashed})
            last = hashed
        connection.execute(
            sa.update(_EVENTS)
            .where(_EVENTS.c.id == sa.bindparam("row_id"))
            .values(
                seq=sa.bindparam("new_seq"),
                prev_hash=sa.bindparam("new_prev"),
                hash=sa.bindparam("new_hash"),
            ),
            sealed,
        )
        after = rows[-1].id


def downgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_index("ix_audit_events_seq")
        batch.drop_column("hash")
        batch.drop_column("prev_hash")
        batch.drop_column("seq")
    op.drop_table("audit_head")
