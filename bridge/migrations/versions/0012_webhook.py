"""webhook mode: updates recorded before they are acknowledged

Revision ID: 0012_webhook
Revises: 0011_quiz_voice
Create Date: 2026-12-03 10:00:00

- `received_update`: one row per update a platform pushed to the webhook, unique by
  (platform, update_id); the sealed body is dropped once the update is processed.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision: str = "0012_webhook"
down_revision: str | None = "0011_quiz_voice"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "received_update",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", AutoString(), nullable=False),
        sa.Column("update_id", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("claimed_by", AutoString(), nullable=True),
        sa.Column("claimed_until", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("platform", "update_id", name="uq_received_update"),
    )
    op.create_index("ix_received_update_open", "received_update", ["done", "claimed_until"])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_received_update_open", table_name="received_update")
    op.drop_table("received_update")
