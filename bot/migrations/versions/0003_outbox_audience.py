"""Outbox rows get an audience: the approval channel's message or the requester's DMs.

Until now one row did both (update the channel message, then DM), so a message
that could never be updated again (deleted, channel archived, bot removed)
held the DM back until the row was dropped a day later. Each row now serves
one audience (bot.store.audiences_of), and each is delivered on its own.

Existing rows, so that every notice is still delivered fully:
- every row becomes `channel`, except `expiry_warning` (only ever a DM) which
  becomes `dm`;
- every *undelivered* row of a kind that tells both (anything but `submitted`
  and `expiry_warning`) is split: a `dm` copy is added with the same kind,
  request, due time and attempts. Delivered rows are history and stay as they
  are (one `channel` row standing for both).

Downgrade merges the halves back (a pair is the same request and kind). A `dm`
half is deleted if it was delivered, or if its `channel` half is still
pending, whose old-style row then does both (so a DM already sent goes out
again). A pending `dm` half whose `channel` half is done stays as an old-style
row: the channel update is repeated, which is harmless.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(
            sa.Column("audience", sa.String(16), nullable=False, server_default="channel")
        )
    op.execute("UPDATE outbox SET audience = 'dm' WHERE kind = 'expiry_warning'")
    op.execute(
        "INSERT INTO outbox"
        " (request_id, kind, audience, created_at, due_at, attempts, delivered_at, last_error)"
        " SELECT request_id, kind, 'dm', created_at, due_at, attempts, NULL, last_error"
        " FROM outbox"
        " WHERE delivered_at IS NULL AND kind NOT IN ('submitted', 'expiry_warning')"
    )
    with op.batch_alter_table("outbox") as batch:  # new rows always name their audience
        batch.alter_column("audience", server_default=None)


def downgrade() -> None:
    op.execute(
        "DELETE FROM outbox WHERE audience = 'dm'"
        " AND kind NOT IN ('submitted', 'expiry_warning')"
        " AND (delivered_at IS NOT NULL OR EXISTS ("
        "   SELECT 1 FROM outbox AS half WHERE half.request_id = outbox.request_id"
        "   AND half.kind = outbox.kind AND half.audience = 'channel'"
        "   AND half.delivered_at IS NULL))"
    )
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("audience")
