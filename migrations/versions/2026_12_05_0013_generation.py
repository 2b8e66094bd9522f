"""generation

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "generations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("source", sa.String(length=1024), nullable=False),
        sa.Column("policy", sa.String(length=256), nullable=False),
        sa.Column("policy_config", JSON_TYPE, nullable=False),
        sa.Column("checkpoint", sa.String(length=256), nullable=True),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("params", JSON_TYPE, nullable=False),
        sa.Column("seed", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("submitted", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("api_key_id", ID_TYPE, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_generations_api_key_id_api_keys"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_generations")),
        sa.UniqueConstraint("name", name=op.f("uq_generations_name")),
    )
    op.create_table(
        "generation_prompts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("generation_id", sa.Uuid(), nullable=False),
        sa.Column("prompt_key", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=512), nullable=True),
        sa.Column("prompt", JSON_TYPE, nullable=False),
        sa.Column("metadata", JSON_TYPE, nullable=True),
        sa.Column("source_line", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["generations.id"],
            name=op.f("fk_generation_prompts_generation_id_generations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_generation_prompts")),
        sa.UniqueConstraint("generation_id", "prompt_key", name="uq_generation_prompts_key"),
    )
    op.create_table(
        "generation_candidates",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("generation_id", sa.Uuid(), nullable=False),
        sa.Column("prompt_id", sa.Uuid(), nullable=False),
        sa.Column("text_key", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["generations.id"],
            name=op.f("fk_generation_candidates_generation_id_generations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["prompt_id"],
            ["generation_prompts.id"],
            name=op.f("fk_generation_candidates_prompt_id_generation_prompts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_generation_candidates")),
        sa.UniqueConstraint("prompt_id", "text_key", name="uq_generation_candidates_text"),
    )
    op.create_index(
        "ix_generation_candidates_generation",
        "generation_candidates",
        ["generation_id"],
        unique=False,
    )
    op.create_table(
        "generation_samples",
        sa.Column("id", ID_TYPE, autoincrement=True, nullable=False),
        sa.Column("generation_id", sa.Uuid(), nullable=False),
        sa.Column("prompt_id", sa.Uuid(), nullable=False),
        sa.Column("sample_index", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("candidate_id", sa.Uuid(), nullable=True),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("seed", sa.Integer(), nullable=True),
        sa.Column("model", sa.String(length=256), nullable=True),
        sa.Column("finish_reason", sa.String(length=64), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Numeric(precision=14, scale=8), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error_class", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'done', 'failed', 'cancelled')",
            name=op.f("ck_generation_samples_status"),
        ),
        sa.ForeignKeyConstraint(
            ["candidate_id"],
            ["generation_candidates.id"],
            name=op.f("fk_generation_samples_candidate_id_generation_candidates"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["generations.id"],
            name=op.f("fk_generation_samples_generation_id_generations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["prompt_id"],
            ["generation_prompts.id"],
            name=op.f("fk_generation_samples_prompt_id_generation_prompts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_generation_samples")),
        sa.UniqueConstraint("prompt_id", "sample_index", name="uq_generation_samples_index"),
    )
    op.create_index(
        op.f("ix_generation_samples_candidate_id"),
        "generation_samples",
        ["candidate_id"],
        unique=False,
    )
    op.create_index(
        "ix_generation_samples_claim",
        "generation_samples",
        ["generation_id", "status", "lease_expires_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_generation_samples_claim", table_name="generation_samples")
    op.drop_index(op.f("ix_generation_samples_candidate_id"), table_name="generation_samples")
    op.drop_table("generation_samples")
    op.drop_index("ix_generation_candidates_generation", table_name="generation_candidates")
    op.drop_table("generation_candidates")
    op.drop_table("generation_prompts")
    op.drop_table("generations")
