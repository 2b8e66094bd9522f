"""rate limits

The fleet-wide rate limits of judges on PostgreSQL: one GCRA row per limit
key (provider, model, endpoint), updated by one atomic statement per request.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 02:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_limits",
        sa.Column("key", sa.String(length=1024), nullable=False),
        sa.Column("requests_tat", sa.Float(), nullable=False),
        sa.Column("tokens_tat", sa.Float(), nullable=False),
        sa.Column("paused_until", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("rate_limits")
