"""ratings and feedback

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 13:23:29.263162
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=256), nullable=False),
        sa.Column("body_hash", sa.String(length=64), nullable=False),
        sa.Column("content_key", sa.String(length=64), nullable=False),
        sa.Column(
            "prompt",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "completion",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("label", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=256), nullable=True),
        sa.Column("user_id", sa.String(length=256), nullable=True),
        sa.Column("session_id", sa.String(length=256), nullable=True),
        sa.Column(
            "metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_feedback_idempotency_key")),
    )
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_feedback_content_key"), ["content_key"], unique=False)
        batch_op.create_index("ix_feedback_created_at_id", ["created_at", "id"], unique=False)

    op.create_table(
        "ratings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("label_key", sa.String(length=64), nullable=False),
        sa.Column("content_key", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=512), nullable=True),
        sa.Column(
            "prompt",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "response",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("judge", sa.String(length=256), nullable=False),
        sa.Column("judge_spec", sa.String(length=256), nullable=False),
        sa.Column(
            "judge_config",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("template_version", sa.String(length=64), nullable=False),
        sa.Column("rubric", sa.String(length=64), nullable=False),
        sa.Column("rubric_version", sa.String(length=128), nullable=False),
        sa.Column("rubric_text", sa.Text(), nullable=False),
        sa.Column("scale_min", sa.Integer(), nullable=False),
        sa.Column("scale_max", sa.Integer(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_class", sa.String(length=64), nullable=True),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=True),
        sa.Column("rationale", sa.Text(), nullable=True),
        sa.Column("source_line", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ratings")),
        sa.UniqueConstraint("label_key", name=op.f("uq_ratings_label_key")),
    )
    with op.batch_alter_table("ratings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ratings_content_key"), ["content_key"], unique=False)
        batch_op.create_index("ix_ratings_created_at_id", ["created_at", "id"], unique=False)
        batch_op.create_index("ix_ratings_judge", ["judge"], unique=False)

    with op.batch_alter_table("judge_calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rating_id", sa.Uuid(), nullable=True))
        batch_op.alter_column("comparison_id", existing_type=sa.Uuid(), nullable=True)
        batch_op.alter_column("shown_order", existing_type=sa.VARCHAR(length=2), nullable=True)
        batch_op.create_index(batch_op.f("ix_judge_calls_rating_id"), ["rating_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_judge_calls_rating_id_ratings"),
            "ratings",
            ["rating_id"],
            ["id"],
            ondelete="CASCADE",
        )
        # A call belongs to exactly one comparison or one rating.
        batch_op.create_check_constraint(
            "one_subject", "(comparison_id IS NULL) <> (rating_id IS NULL)"
        )


def downgrade() -> None:
    op.execute("DELETE FROM judge_calls WHERE rating_id IS NOT NULL")
    with op.batch_alter_table("judge_calls", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_judge_calls_one_subject"), type_="check")
        batch_op.drop_constraint(batch_op.f("fk_judge_calls_rating_id_ratings"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_judge_calls_rating_id"))
        batch_op.alter_column("shown_order", existing_type=sa.VARCHAR(length=2), nullable=False)
        batch_op.alter_column("comparison_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.drop_column("rating_id")

    with op.batch_alter_table("ratings", schema=None) as batch_op:
        batch_op.drop_index("ix_ratings_judge")
        batch_op.drop_index("ix_ratings_created_at_id")
        batch_op.drop_index(batch_op.f("ix_ratings_content_key"))

    op.drop_table("ratings")
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_index("ix_feedback_created_at_id")
        batch_op.drop_index(batch_op.f("ix_feedback_content_key"))

    op.drop_table("feedback")
