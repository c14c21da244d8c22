"""quizzes (issue 15, part 4); voice posts need no schema change

Revision ID: 0011_quiz_voice
Revises: 0010_history_links
Create Date: 2026-12-10 10:00:00

- `post.quiz_correct` (the 0-based correct option of a quiz, NULL for a plain poll) and
  `post.quiz_explanation` (shown with the answer);
- `quizanswer`: each person's first answer to a quiz, by blind index only (right or wrong), so
  `/results` counts correct answers and the answer is revealed once per person.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision: str = "0011_quiz_voice"
down_revision: str | None = "0010_history_links"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("post", schema=None) as batch_op:
        batch_op.add_column(sa.Column("quiz_correct", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("quiz_explanation", AutoString(), nullable=False, server_default=""))
    op.create_table(
        "quizanswer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("voter_index", AutoString(), nullable=False),
        sa.Column("correct", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["post_id"], ["post.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("post_id", "voter_index"),
    )
    op.create_index(op.f("ix_quizanswer_post_id"), "quizanswer", ["post_id"], unique=False)
    op.create_index(op.f("ix_quizanswer_voter_index"), "quizanswer", ["voter_index"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index(op.f("ix_quizanswer_voter_index"), table_name="quizanswer")
    op.drop_index(op.f("ix_quizanswer_post_id"), table_name="quizanswer")
    op.drop_table("quizanswer")
    with op.batch_alter_table("post", schema=None) as batch_op:
        batch_op.drop_column("quiz_explanation")
        batch_op.drop_column("quiz_correct")
