"""revisions and constitutions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 13:56:17.714360
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ONE_OF_THREE = (
    "(CASE WHEN comparison_id IS NULL THEN 0 ELSE 1 END"
    " + CASE WHEN rating_id IS NULL THEN 0 ELSE 1 END"
    " + CASE WHEN revision_id IS NULL THEN 0 ELSE 1 END) = 1"
)


def upgrade() -> None:
    op.create_table(
        "revisions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("label_key", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=512), nullable=True),
        sa.Column(
            "prompt",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "response",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("generator", sa.String(length=256), nullable=True),
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
        sa.Column("constitution", sa.String(length=256), nullable=False),
        sa.Column("constitution_id", sa.String(length=128), nullable=False),
        sa.Column("constitution_version", sa.String(length=64), nullable=False),
        sa.Column("rounds_requested", sa.Integer(), nullable=False),
        sa.Column("principle", sa.String(length=128), nullable=True),
        sa.Column("seed", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_class", sa.String(length=64), nullable=True),
        sa.Column("revised", sa.Boolean(), nullable=True),
        sa.Column("final_response", sa.Text(), nullable=True),
        sa.Column("batch_id", sa.Uuid(), nullable=True),
        sa.Column("source_line", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_revisions_batch_id_batches"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_revisions")),
        sa.UniqueConstraint("label_key", name=op.f("uq_revisions_label_key")),
    )
    with op.batch_alter_table("revisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_revisions_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_revisions_constitution_id"), ["constitution_id"], unique=False
        )
        batch_op.create_index("ix_revisions_created_at_id", ["created_at", "id"], unique=False)

    op.create_table(
        "revision_rounds",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("revision_id", sa.Uuid(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("principle", sa.String(length=128), nullable=False),
        sa.Column("critique", sa.Text(), nullable=False),
        sa.Column("needs_revision", sa.Boolean(), nullable=False),
        sa.Column("revised_response", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["revision_id"],
            ["revisions.id"],
            name=op.f("fk_revision_rounds_revision_id_revisions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_revision_rounds")),
    )
    with op.batch_alter_table("revision_rounds", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_revision_rounds_revision_id"), ["revision_id"], unique=False
        )

    with op.batch_alter_table("comparisons", schema=None) as batch_op:
        batch_op.add_column(sa.Column("constitution", sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column("principle_count", sa.Integer(), nullable=True))

    with op.batch_alter_table("judge_calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revision_id", sa.Uuid(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_judge_calls_revision_id"), ["revision_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_judge_calls_revision_id_revisions"),
            "revisions",
            ["revision_id"],
            ["id"],
            ondelete="CASCADE",
        )
        # A call belongs to exactly one comparison, rating or revision run.
        batch_op.drop_constraint(batch_op.f("ck_judge_calls_one_subject"), type_="check")
        batch_op.create_check_constraint("one_subject", ONE_OF_THREE)

    with op.batch_alter_table("verdicts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "principles",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("verdicts", schema=None) as batch_op:
        batch_op.drop_column("principles")

    op.execute("DELETE FROM judge_calls WHERE revision_id IS NOT NULL")
    with op.batch_alter_table("judge_calls", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_judge_calls_one_subject"), type_="check")
        batch_op.create_check_constraint(
            "one_subject", "(comparison_id IS NULL) <> (rating_id IS NULL)"
        )
        batch_op.drop_constraint(
            batch_op.f("fk_judge_calls_revision_id_revisions"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_judge_calls_revision_id"))
        batch_op.drop_column("revision_id")

    with op.batch_alter_table("comparisons", schema=None) as batch_op:
        batch_op.drop_column("principle_count")
        batch_op.drop_column("constitution")

    with op.batch_alter_table("revision_rounds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_revision_rounds_revision_id"))

    op.drop_table("revision_rounds")
    with op.batch_alter_table("revisions", schema=None) as batch_op:
        batch_op.drop_index("ix_revisions_created_at_id")
        batch_op.drop_index(batch_op.f("ix_revisions_constitution_id"))
        batch_op.drop_index(batch_op.f("ix_revisions_batch_id"))

    op.drop_table("revisions")
