"""entitlement: an index for the sweep that tells followers their paid access ended

Revision ID: 0014_entitlement_expiry
Revises: 0013_language
Create Date: 2026-11-30 15:00:00

- `ix_entitlement_expiry` on (expiry_noticed, paid_until): the scheduler's once-a-minute sweep
  (`Payments.expired_unnoticed`) reads the endings not yet told instead of every entitlement.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014_entitlement_expiry"
down_revision: str | None = "0013_language"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_index("ix_entitlement_expiry", "entitlement", ["expiry_noticed", "paid_until"])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_entitlement_expiry", table_name="entitlement")
