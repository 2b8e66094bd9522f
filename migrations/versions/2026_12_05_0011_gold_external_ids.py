"""gold external ids

An imported gold label merges every line of its file that holds the same
pair; ``external_ids`` keeps each of those lines' ids, in file order and
aligned with ``votes``, so no source id is lost when lines are merged.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("gold_labels", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "external_ids",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("gold_labels", schema=None) as batch_op:
        batch_op.drop_column("external_ids")
