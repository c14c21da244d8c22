"""paid posts, access codes and what expiry and refunds need

Revision ID: 0008_paid_posts
Revises: 0007_payments
Create Date: 2026-11-30 02:00:00

- `post.paid` (subscribers only), `post.stars` (pay-per-post price), `post.purchases` (count);
- `recurringpost.paid`: each occurrence is a paid post;
- `entitlement.expiry_noticed`: the follower was told once that access ended;
- the ledger's charge id is unique per kind (a refund row repeats its charge's id);
- `accesscode`: single-use codes for a tier's days, kept only as a keyed digest;
- `redeemfailure`: failed `/redeem` attempts by blind index, to throttle guessing.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision: str = "0008_paid_posts"
down_revision: str | None = "0007_payments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("post", schema=None) as batch_op:
        batch_op.add_column(sa.Column("paid", sa.Boolean(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("stars", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("purchases", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("recurringpost", schema=None) as batch_op:
        batch_op.add_column(sa.Column("paid", sa.Boolean(), nullable=False, server_default="0"))
    with op.batch_alter_table("entitlement", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expiry_noticed", sa.Boolean(), nullable=False, server_default="0"))
    with op.batch_alter_table("ledger", schema=None) as batch_op:
        batch_op.drop_constraint("uq_ledger_charge_id", type_="unique")
        batch_op.create_unique_constraint("uq_ledger_charge_kind", ["telegram_payment_charge_id", "kind"])
    op.create_table(
        "accesscode",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("digest", AutoString(), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("redeemed_at", sa.Float(), nullable=True),
        sa.Column("ledger_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["channel_id"], ["channel.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_accesscode_channel_id"), "accesscode", ["channel_id"], unique=False)
    op.create_index(op.f("ix_accesscode_digest"), "accesscode", ["digest"], unique=True)
    op.create_table(
        "redeemfailure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sender_index", AutoString(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_redeemfailure_sender_index"), "redeemfailure", ["sender_index"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index(op.f("ix_redeemfailure_sender_index"), table_name="redeemfailure")
    op.drop_table("redeemfailure")
    op.drop_index(op.f("ix_accesscode_digest"), table_name="accesscode")
    op.drop_index(op.f("ix_accesscode_channel_id"), table_name="accesscode")
    op.drop_table("accesscode")
    with op.batch_alter_table("ledger", schema=None) as batch_op:
        batch_op.drop_constraint("uq_ledger_charge_kind", type_="unique")
        batch_op.create_unique_constraint("uq_ledger_charge_id", ["telegram_payment_charge_id"])
    with op.batch_alter_table("entitlement", schema=None) as batch_op:
        batch_op.drop_column("expiry_noticed")
    with op.batch_alter_table("recurringpost", schema=None) as batch_op:
        batch_op.drop_column("paid")
    with op.batch_alter_table("post", schema=None) as batch_op:
        batch_op.drop_column("purchases")
        batch_op.drop_column("stars")
        batch_op.drop_column("paid")
