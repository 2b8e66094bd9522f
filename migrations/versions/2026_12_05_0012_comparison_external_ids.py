"""comparison external ids

Lines of one file that hold the same pair are judged once, as one
comparison, which keeps the first line's ``external_id``. ``external_ids``
keeps the distinct ids of every line merged into it (the first line's
first), so no source id is lost when duplicate lines are merged.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 21:25:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("comparisons", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "external_ids",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("comparisons", schema=None) as batch_op:
        batch_op.drop_column("external_ids")
