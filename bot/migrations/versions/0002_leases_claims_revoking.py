"""Leadership lease table, grant claims, and the revoking state.

- `leases`: one row per lease (the scheduler's leadership), renewed with the
  database's own clock, so a frozen or cut-off leader loses it in bounded time.
- `requests.claim_until` / `requests.attempts`: who may run a grant now, and
  how often it was tried (transient failures are retried, never duplicated).
- Active requests that carried a revoker (`ended_by`) were revocations in
  flight; they become `revoking`, which the timers now finish.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    leases = op.create_table(
        "leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("token", sa.BigInteger(), nullable=False),
        sa.Column("expires_epoch", sa.Float(), nullable=False),
    )
    op.bulk_insert(leases, [{"name": "scheduler", "holder": "", "token": 0, "expires_epoch": 0.0}])
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("claim_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
    op.execute(
        "UPDATE requests SET state = 'revoking' WHERE state = 'active' AND ended_by IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("UPDATE requests SET state = 'active' WHERE state = 'revoking'")
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("attempts")
        batch.drop_column("claim_until")
    op.drop_table("leases")
