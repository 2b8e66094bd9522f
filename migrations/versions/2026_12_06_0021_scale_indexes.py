"""scale indexes

Indexes for the hot queries at millions of rows (tests/test_query_plans.py):

- ``ix_comparisons_pending`` and ``ix_comparisons_batch_pending`` (partial:
  pending rows only): a claim takes the oldest pending pairs (of a batch) by
  walking them in order, instead of sorting every pending row of a large
  batch per claim. The status leads so that SQLite, without statistics,
  prefers them to the index on status alone;
- ``ix_comparisons_batch_created`` (batch_id, created_at, id) replaces the
  index on batch_id alone: the same look-ups, and a batch's pages in order;
- ``ix_verdicts_jury``: the review queue walks split jury verdicts in id
  order without visiting single judges' verdicts.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 02:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = sa.text("status = 'pending'")
JURY = sa.text("disagreement IS NOT NULL")


def upgrade() -> None:
    op.create_index("ix_comparisons_batch_created", "comparisons", ["batch_id", "created_at", "id"])
    op.drop_index("ix_comparisons_batch_id", table_name="comparisons")
    op.create_index(
        "ix_comparisons_pending",
        "comparisons",
        ["status", "created_at", "id"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )
    op.create_index(
        "ix_comparisons_batch_pending",
        "comparisons",
        ["batch_id", "status", "created_at", "id"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )
    op.create_index(
        "ix_verdicts_jury",
        "verdicts",
        ["id", "disagreement"],
        postgresql_where=JURY,
        sqlite_where=JURY,
    )


def downgrade() -> None:
    op.drop_index("ix_verdicts_jury", table_name="verdicts")
    op.drop_index("ix_comparisons_batch_pending", table_name="comparisons")
    op.drop_index("ix_comparisons_pending", table_name="comparisons")
    op.create_index("ix_comparisons_batch_id", "comparisons", ["batch_id"])
    op.drop_index("ix_comparisons_batch_created", table_name="comparisons")
