"""a post keeps its copies per status once nothing is left to send

Revision ID: 0006_post_send_counts
Revises: 0005_authz
Create Date: 2026-11-29 20:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0006_post_send_counts"
down_revision: str | None = "0005_authz"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("post", schema=None) as batch_op:
        batch_op.add_column(sa.Column("send_counts", sqlmodel.sql.sqltypes.AutoString(), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("post", schema=None) as batch_op:
        batch_op.drop_column("send_counts")
