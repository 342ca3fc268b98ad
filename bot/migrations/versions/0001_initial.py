"""Initial tables: requests, audit_events, outbox.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _utc(name: str, *, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "requests",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("requester", sa.String(64), nullable=False),
        sa.Column("k8s_user", sa.String(256), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("role", sa.String(256), nullable=False),
        sa.Column("scope", sa.String(256), nullable=False),
        sa.Column("namespace", sa.String(256), nullable=True),
        sa.Column("duration_seconds", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(2000), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        _utc("created_at", nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=True),
        _utc("decided_at"),
        sa.Column("decision_note", sa.String(2000), nullable=True),
        _utc("granted_at"),
        _utc("expires_at"),
        _utc("ended_at"),
        sa.Column("ended_by", sa.String(64), nullable=True),
        sa.Column("cause", sa.String(2000), nullable=True),
        sa.Column("extends", sa.String(40), nullable=True),
        sa.Column("warned", sa.Boolean(), nullable=False),
        sa.Column("message_channel", sa.String(64), nullable=True),
        sa.Column("message_ts", sa.String(64), nullable=True),
    )
    op.create_index("ix_requests_requester", "requests", ["requester"])
    op.create_index("ix_requests_state", "requests", ["state"])
    op.create_index("ix_requests_expires_at", "requests", ["expires_at"])
    op.create_index("ix_requests_extends", "requests", ["extends"])
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        _utc("at", nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("request_id", sa.String(40), nullable=False),
        sa.Column("details", sa.String(4000), nullable=False),
    )
    op.create_index("ix_audit_events_at", "audit_events", ["at"])
    op.create_index("ix_audit_events_request_id", "audit_events", ["request_id"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        _utc("created_at", nullable=False),
        _utc("due_at", nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _utc("delivered_at"),
        sa.Column("last_error", sa.String(500), nullable=True),
    )
    op.create_index("ix_outbox_request_id", "outbox", ["request_id"])
    op.create_index("ix_outbox_due_at", "outbox", ["due_at"])
    op.create_index("ix_outbox_delivered_at", "outbox", ["delivered_at"])


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("audit_events")
    op.drop_table("requests")
