"""selection

Selection runs (a strategy, a judge and options over a generation) and
their decisions: per prompt, chosen and rejected candidates or the reason
for none.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "selection_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("run_key", sa.String(length=64), nullable=False),
        sa.Column("generation_id", sa.Uuid(), nullable=False),
        sa.Column("strategy", sa.String(length=32), nullable=False),
        sa.Column("judge", sa.String(length=256), nullable=False),
        sa.Column("judge_spec", sa.String(length=256), nullable=False),
        sa.Column("judge_config", JSON_TYPE, nullable=False),
        sa.Column("options", JSON_TYPE, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "strategy IN ('all-pairs', 'best-vs-worst', 'tournament')",
            name=op.f("ck_selection_runs_strategy"),
        ),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["generations.id"],
            name=op.f("fk_selection_runs_generation_id_generations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_selection_runs")),
        sa.UniqueConstraint("run_key", name=op.f("uq_selection_runs_run_key")),
    )
    with op.batch_alter_table("selection_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_selection_runs_generation_id"), ["generation_id"], unique=False
        )

    op.create_table(
        "selections",
        sa.Column("id", ID_TYPE, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("prompt_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("skip_reason", sa.String(length=32), nullable=True),
        sa.Column("chosen_id", sa.Uuid(), nullable=True),
        sa.Column("rejected_id", sa.Uuid(), nullable=True),
        sa.Column("chosen_score", sa.Float(), nullable=True),
        sa.Column("rejected_score", sa.Float(), nullable=True),
        sa.Column("margin", sa.Float(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("details", JSON_TYPE, nullable=False),
        sa.Column("judgments", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('selected', 'skipped')", name=op.f("ck_selections_status")),
        sa.CheckConstraint(
            "(status = 'selected' AND chosen_id IS NOT NULL AND rejected_id IS NOT NULL"
            " AND skip_reason IS NULL) OR (status = 'skipped' AND chosen_id IS NULL"
            " AND rejected_id IS NULL AND skip_reason IS NOT NULL)",
            name=op.f("ck_selections_decided"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["selection_runs.id"],
            name=op.f("fk_selections_run_id_selection_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["prompt_id"],
            ["generation_prompts.id"],
            name=op.f("fk_selections_prompt_id_generation_prompts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["chosen_id"],
            ["generation_candidates.id"],
            name=op.f("fk_selections_chosen_id_generation_candidates"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rejected_id"],
            ["generation_candidates.id"],
            name=op.f("fk_selections_rejected_id_generation_candidates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_selections")),
        sa.UniqueConstraint("run_id", "prompt_id", name="uq_selections_run_prompt"),
    )
    with op.batch_alter_table("selections", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_selections_prompt_id"), ["prompt_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_selections_chosen_id"), ["chosen_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_selections_rejected_id"), ["rejected_id"], unique=False
        )
        batch_op.create_index("ix_selections_run_status", ["run_id", "status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("selections", schema=None) as batch_op:
        batch_op.drop_index("ix_selections_run_status")
        batch_op.drop_index(batch_op.f("ix_selections_rejected_id"))
        batch_op.drop_index(batch_op.f("ix_selections_chosen_id"))
        batch_op.drop_index(batch_op.f("ix_selections_prompt_id"))
    op.drop_table("selections")
    with op.batch_alter_table("selection_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_selection_runs_generation_id"))
    op.drop_table("selection_runs")
