"""history for new followers, follow links, the followers-over-time snapshot

Revision ID: 0010_history_links
Revises: 0009_ops
Create Date: 2026-12-02 10:00:00

- `channel.history`: earlier posts a new follower gets (NULL: the config default);
- `channel.link_follows`: how many follows came through the channel's link (a count);
- `delivery.earlier`: a copy sent to a new follower as an earlier post;
- `followersnapshot`: one row per channel per day with its follower count (charts).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision: str = "0010_history_links"
down_revision: str | None = "0009_ops"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("channel", schema=None) as batch_op:
        batch_op.add_column(sa.Column("history", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("link_follows", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.add_column(sa.Column("earlier", sa.Boolean(), nullable=False, server_default="0"))
    op.create_table(
        "followersnapshot",
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("day", AutoString(length=10), nullable=False),
        sa.Column("followers", sa.Integer(), nullable=False),
        sa.Column("taken_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["channel_id"], ["channel.id"]),
        sa.PrimaryKeyConstraint("channel_id", "day"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("followersnapshot")
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_column("earlier")
    with op.batch_alter_table("channel", schema=None) as batch_op:
        batch_op.drop_column("link_follows")
        batch_op.drop_column("history")
