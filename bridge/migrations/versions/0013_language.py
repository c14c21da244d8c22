"""languages: the language each person chose with /lang

Revision ID: 0013_language
Revises: 0012_webhook
Create Date: 2026-12-10 10:00:00

- `personlanguage`: one row per person who chose a language, found by their blind index and
  sealed like a follower (so `rotate-key` re-indexes it); `/forgetme` deletes it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision: str = "0013_language"
down_revision: str | None = "0012_webhook"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "personlanguage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", AutoString(), nullable=False),
        sa.Column("account_index", AutoString(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("language", AutoString(length=8), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_personlanguage_account_index"), "personlanguage", ["account_index"], unique=True
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index(op.f("ix_personlanguage_account_index"), table_name="personlanguage")
    op.drop_table("personlanguage")
