"""provider batches and prompt caching

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # judge_calls.cache_read_tokens / cache_write_tokens exist since 0001;
    # this revision adds the record of submissions to the providers' batch APIs.
    op.create_table(
        "provider_batches",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("provider_batch_id", sa.String(length=256), nullable=False),
        sa.Column("judge", sa.String(length=256), nullable=False),
        sa.Column("lease_owner", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("provider_status", sa.String(length=32), nullable=True),
        sa.Column("pairs", sa.Integer(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_provider_batches_batch_id_batches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_batches")),
        sa.UniqueConstraint(
            "provider_batch_id", name=op.f("uq_provider_batches_provider_batch_id")
        ),
    )
    with op.batch_alter_table("provider_batches", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_provider_batches_batch_id"), ["batch_id"], unique=False
        )
        batch_op.create_index("ix_provider_batches_status", ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("provider_batches", schema=None) as batch_op:
        batch_op.drop_index("ix_provider_batches_status")
        batch_op.drop_index(batch_op.f("ix_provider_batches_batch_id"))
    op.drop_table("provider_batches")
