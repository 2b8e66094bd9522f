"""page indexes

``ix_comparisons_judge_created`` (judge, created_at, id): a page of one
judge's comparisons reads that judge's rows from the cursor on, in order.
``ix_verdicts_jury_queue`` (id, disagreement, comparison_id) over jury
verdicts: the review queue walks its candidates in this index alone
(declared in app/store/models.py).

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_comparisons_judge_created", "comparisons", ["judge", "created_at", "id"])
    op.create_index(
        "ix_verdicts_jury_queue",
        "verdicts",
        ["id", "disagreement", "comparison_id"],
        postgresql_where=sa.text("disagreement IS NOT NULL"),
        sqlite_where=sa.text("disagreement IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_verdicts_jury_queue", table_name="verdicts")
    op.drop_index("ix_comparisons_judge_created", table_name="comparisons")
