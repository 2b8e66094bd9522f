"""juries

Every member's vote of a jury verdict (``jury_votes``), the jury's
disagreement on its verdict (``verdicts.disagreement``, indexed for the
review queue), and which vote each member call belongs to
(``judge_calls.jury_vote_id``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "jury_votes",
        sa.Column("id", ID_TYPE, autoincrement=True, nullable=False),
        sa.Column("comparison_id", sa.Uuid(), nullable=False),
        sa.Column("verdict_id", ID_TYPE, nullable=True),
        sa.Column("member", sa.String(length=256), nullable=False),
        sa.Column("member_spec", sa.String(length=256), nullable=False),
        sa.Column("member_config", JSON_TYPE, nullable=False),
        sa.Column("winner", sa.String(length=8), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("position_consistent", sa.Boolean(), nullable=True),
        sa.Column("soft_preference", sa.Float(), nullable=True),
        sa.Column("rationale", sa.Text(), nullable=True),
        sa.Column("error_class", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["comparison_id"],
            ["comparisons.id"],
            name=op.f("fk_jury_votes_comparison_id_comparisons"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["verdict_id"],
            ["verdicts.id"],
            name=op.f("fk_jury_votes_verdict_id_verdicts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jury_votes")),
    )
    with op.batch_alter_table("jury_votes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_jury_votes_comparison_id"), ["comparison_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_jury_votes_verdict_id"), ["verdict_id"], unique=False)

    with op.batch_alter_table("verdicts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disagreement", sa.Float(), nullable=True))
        batch_op.create_index("ix_verdicts_disagreement", ["disagreement"], unique=False)

    with op.batch_alter_table("judge_calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("jury_vote_id", ID_TYPE, nullable=True))
        batch_op.create_index(
            batch_op.f("ix_judge_calls_jury_vote_id"), ["jury_vote_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_judge_calls_jury_vote_id_jury_votes"),
            "jury_votes",
            ["jury_vote_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("judge_calls", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_judge_calls_jury_vote_id_jury_votes"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_judge_calls_jury_vote_id"))
        batch_op.drop_column("jury_vote_id")

    with op.batch_alter_table("verdicts", schema=None) as batch_op:
        batch_op.drop_index("ix_verdicts_disagreement")
        batch_op.drop_column("disagreement")

    with op.batch_alter_table("jury_votes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jury_votes_verdict_id"))
        batch_op.drop_index(batch_op.f("ix_jury_votes_comparison_id"))

    op.drop_table("jury_votes")
