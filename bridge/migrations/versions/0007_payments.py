"""paid channels: tiers, entitlements and the ledger

Revision ID: 0007_payments
Revises: 0006_post_send_counts
Create Date: 2026-11-30 00:30:00

- `tier`: a channel's price in Stars per 30 days, on sale or ended, teaser on or off;
- `entitlement`: paid access of one follower to one channel, until a time;
- `ledger`: money events (charge, renewal, refund, code); the payer sealed to the row and
  found by a keyed blind index; a Telegram charge id recorded once (unique).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision: str = "0007_payments"
down_revision: str | None = "0006_post_send_counts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "tier",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("price", sa.Integer(), nullable=False),
        sa.Column("period_s", sa.Integer(), nullable=False),
        sa.Column("on_sale", sa.Boolean(), nullable=False),
        sa.Column("teaser", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["channel_id"], ["channel.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_tier_channel_id"), "tier", ["channel_id"], unique=False)
    op.create_table(
        "entitlement",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("follower_id", sa.Integer(), nullable=False),
        sa.Column("paid_until", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["channel_id"], ["channel.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("follower_id", "channel_id"),
    )
    op.create_index(op.f("ix_entitlement_channel_id"), "entitlement", ["channel_id"], unique=False)
    op.create_table(
        "ledger",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", AutoString(), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("telegram_payment_charge_id", AutoString(), nullable=True),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("platform", AutoString(), nullable=False),
        sa.Column("follower_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("follower_index", AutoString(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["channel_id"], ["channel.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("telegram_payment_charge_id", name="uq_ledger_charge_id"),
    )
    op.create_index(op.f("ix_ledger_channel_id"), "ledger", ["channel_id"], unique=False)
    op.create_index(op.f("ix_ledger_follower_index"), "ledger", ["follower_index"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index(op.f("ix_ledger_follower_index"), table_name="ledger")
    op.drop_index(op.f("ix_ledger_channel_id"), table_name="ledger")
    op.drop_table("ledger")
    op.drop_index(op.f("ix_entitlement_channel_id"), table_name="entitlement")
    op.drop_table("entitlement")
    op.drop_index(op.f("ix_tier_channel_id"), table_name="tier")
    op.drop_table("tier")
