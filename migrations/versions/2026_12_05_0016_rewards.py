"""rewards

One row per item of a reward request (``POST /v1/rewards``, ``POST
/get_reward``): its score or the reason it has none, the rating or
comparison behind it, and the caller's run and step.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "reward_items",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("item_key", sa.String(length=64), nullable=False),
        sa.Column("score_key", sa.String(length=64), nullable=False),
        sa.Column("run", sa.String(length=256), nullable=True),
        sa.Column("step", sa.Integer(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=256), nullable=True),
        sa.Column("scorer", sa.String(length=16), nullable=False),
        sa.Column("judge", sa.String(length=256), nullable=False),
        sa.Column("prompt", _json(), nullable=False),
        sa.Column("completion", _json(), nullable=False),
        sa.Column("reference", _json(), nullable=True),
        sa.Column("metadata", _json(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("raw_score", sa.Float(), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=True),
        sa.Column("rating_id", sa.Uuid(), nullable=True),
        sa.Column("comparison_id", sa.Uuid(), nullable=True),
        sa.Column(
            "api_key_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["rating_id"],
            ["ratings.id"],
            name=op.f("fk_reward_items_rating_id_ratings"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["comparison_id"],
            ["comparisons.id"],
            name=op.f("fk_reward_items_comparison_id_comparisons"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_reward_items_api_key_id_api_keys"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reward_items")),
        sa.UniqueConstraint("item_key", name=op.f("uq_reward_items_item_key")),
    )
    with op.batch_alter_table("reward_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reward_items_score_key"), ["score_key"], unique=False)
        batch_op.create_index("ix_reward_items_run_step", ["run", "step"], unique=False)
        batch_op.create_index("ix_reward_items_created_at_id", ["created_at", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("reward_items", schema=None) as batch_op:
        batch_op.drop_index("ix_reward_items_created_at_id")
        batch_op.drop_index("ix_reward_items_run_step")
        batch_op.drop_index(batch_op.f("ix_reward_items_score_key"))
    op.drop_table("reward_items")
