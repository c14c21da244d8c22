"""open deliveries by platform: what the queue-depth gauge counts

Revision ID: 0009_ops
Revises: 0008_paid_posts
Create Date: 2026-11-30 03:00:00

- `ix_delivery_open_platform`: a partial index of the open (pending or leased) deliveries by
  platform, so `/metrics` and `channelbridge status` count a 100,000-copy queue per platform
  from the index (about 6 ms on SQLite) instead of reading every row (about 40 ms). Like the
  other open-row indexes, a row leaves it when it is done.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_ops"
down_revision: str | None = "0008_paid_posts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN = "status IN ('pending', 'leased')"


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.create_index(
            "ix_delivery_open_platform",
            ["platform"],
            unique=False,
            sqlite_where=sa.text(_OPEN),
            postgresql_where=sa.text(_OPEN),
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_delivery_open_platform",
            sqlite_where=sa.text(_OPEN),
            postgresql_where=sa.text(_OPEN),
        )
