"""rounds

RLAIF rounds (``rounds``): the policy and checkpoint, the prompt set, the
strategy, the judge and the parent round, with the generation and the
head-to-head batch they made; ``round_matchups``: each prompt a round shares
with its parent, as the comparison of their two answers.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "rounds",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("policy", sa.String(length=256), nullable=False),
        sa.Column("checkpoint", sa.String(length=256), nullable=True),
        sa.Column("prompts_source", sa.String(length=1024), nullable=False),
        sa.Column("prompt_set_key", sa.String(length=64), nullable=False),
        sa.Column("prompt_count", sa.Integer(), nullable=False),
        sa.Column("strategy", sa.String(length=64), nullable=False),
        sa.Column("judge", sa.String(length=256), nullable=False),
        sa.Column("params", JSON_TYPE, nullable=False),
        sa.Column("generation_id", sa.Uuid(), nullable=True),
        sa.Column("selection_run_id", sa.Uuid(), nullable=True),
        sa.Column("batch_id", sa.Uuid(), nullable=True),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("api_key_id", ID_TYPE, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "stage IN ('generate', 'select', 'compare', 'done')", name=op.f("ck_rounds_stage")
        ),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_rounds_api_key_id_api_keys"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_rounds_batch_id_batches"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["generations.id"],
            name=op.f("fk_rounds_generation_id_generations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["selection_run_id"],
            ["selection_runs.id"],
            name=op.f("fk_rounds_selection_run_id_selection_runs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["rounds.id"],
            name=op.f("fk_rounds_parent_id_rounds"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rounds")),
        sa.UniqueConstraint("name", name=op.f("uq_rounds_name")),
    )
    with op.batch_alter_table("rounds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rounds_parent_id"), ["parent_id"], unique=False)

    op.create_table(
        "round_matchups",
        sa.Column("id", ID_TYPE, autoincrement=True, nullable=False),
        sa.Column("round_id", sa.Uuid(), nullable=False),
        sa.Column("prompt_key", sa.String(length=64), nullable=False),
        sa.Column("candidate_id", sa.Uuid(), nullable=True),
        sa.Column("parent_candidate_id", sa.Uuid(), nullable=True),
        sa.Column("comparison_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["candidate_id"],
            ["generation_candidates.id"],
            name=op.f("fk_round_matchups_candidate_id_generation_candidates"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["comparison_id"],
            ["comparisons.id"],
            name=op.f("fk_round_matchups_comparison_id_comparisons"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_candidate_id"],
            ["generation_candidates.id"],
            name=op.f("fk_round_matchups_parent_candidate_id_generation_candidates"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["round_id"],
            ["rounds.id"],
            name=op.f("fk_round_matchups_round_id_rounds"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_round_matchups")),
        sa.UniqueConstraint("round_id", "prompt_key", name="uq_round_matchups_prompt"),
    )
    with op.batch_alter_table("round_matchups", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_round_matchups_comparison_id"), ["comparison_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("round_matchups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_round_matchups_comparison_id"))
    op.drop_table("round_matchups")
    with op.batch_alter_table("rounds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rounds_parent_id"))
    op.drop_table("rounds")
