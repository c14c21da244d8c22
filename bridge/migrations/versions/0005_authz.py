"""authorization: invite creators, admin numbers never reused, follower counters

Revision ID: 0005_authz
Revises: 0004_notices
Create Date: 2026-11-27 10:00:00.000000

- `channel.last_admin_number`: a per-channel counter (set to the highest number in use), so a
  removed admin's number is never handed out again;
- `channeladmin (channel_id, number)` unique;
- `admininvite.created_by`: the inviting admin's row id, to revoke their unused codes on removal;
- `followercount`: followers per channel and platform (active, muted, paused), filled from the
  subscriptions, so counting never scans them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision: str = "0005_authz"
down_revision: str | None = "0004_notices"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("channel", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_admin_number", sa.Integer(), nullable=False, server_default="0"))
    op.execute(
        "UPDATE channel SET last_admin_number ="
        " COALESCE((SELECT max(number) FROM channeladmin WHERE channeladmin.channel_id = channel.id), 0)"
    )
    with op.batch_alter_table("channeladmin", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_channeladmin_channel_id_number", ["channel_id", "number"])
    with op.batch_alter_table("admininvite", schema=None) as batch_op:
        batch_op.add_column(sa.Column("created_by", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_admininvite_created_by"), ["created_by"], unique=False)
    op.create_table(
        "followercount",
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("platform", AutoString(), nullable=False),
        sa.Column("active", sa.Integer(), nullable=False),
        sa.Column("muted", sa.Integer(), nullable=False),
        sa.Column("paused", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["channel_id"], ["channel.id"]),
        sa.PrimaryKeyConstraint("channel_id", "platform"),
    )
    op.execute(
        "INSERT INTO followercount (channel_id, platform, active, muted, paused)"
        " SELECT s.channel_id, f.platform,"
        " sum(CASE WHEN s.paused THEN 0 ELSE 1 END),"
        " sum(CASE WHEN s.muted AND NOT s.paused THEN 1 ELSE 0 END),"
        " sum(CASE WHEN s.paused THEN 1 ELSE 0 END)"
        " FROM subscription s JOIN follower f ON f.id = s.follower_id"
        " GROUP BY s.channel_id, f.platform"
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("followercount")
    with op.batch_alter_table("admininvite", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_admininvite_created_by"))
        batch_op.drop_column("created_by")
    with op.batch_alter_table("channeladmin", schema=None) as batch_op:
        batch_op.drop_constraint("uq_channeladmin_channel_id_number", type_="unique")
    with op.batch_alter_table("channel", schema=None) as batch_op:
        batch_op.drop_column("last_admin_number")
