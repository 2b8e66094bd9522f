"""review pending

``review_pending``: the review queue's work list (issue 20), one row per
current split jury verdict (disagreement above 0) that no gold label covers
yet, by the comparison or by its pair key. The writes keep it: storing a
jury verdict adds its row and drops the comparison's older ones, a gold
label drops its pair's rows, deleting one puts them back
(app/store/review_pending.py). The queue reads it in verdict-id order, so
an exhausted queue (every split reviewed) reads no verdicts at all.

Filled here from the stored verdicts and gold labels in one statement.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-06 06:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

BACKFILL = """
INSERT INTO review_pending (verdict_id, comparison_id, pair_key, judge, batch_id, disagreement)
SELECT v.id, v.comparison_id, c.pair_key, c.judge, c.batch_id, v.disagreement
FROM verdicts AS v JOIN comparisons AS c ON c.id = v.comparison_id
WHERE v.disagreement > 0
  AND NOT EXISTS (
    SELECT 1 FROM verdicts AS newer WHERE newer.comparison_id = v.comparison_id AND newer.id > v.id
  )
  AND NOT EXISTS (SELECT 1 FROM gold_labels AS g WHERE g.comparison_id = c.id)
  AND NOT EXISTS (SELECT 1 FROM gold_labels AS g WHERE g.pair_key = c.pair_key)
"""


def upgrade() -> None:
    op.create_table(
        "review_pending",
        sa.Column("verdict_id", ID_TYPE, autoincrement=False, nullable=False),
        sa.Column("comparison_id", sa.Uuid(), nullable=False),
        sa.Column("pair_key", sa.String(length=64), nullable=True),
        sa.Column("judge", sa.String(length=256), nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=True),
        sa.Column("disagreement", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["verdict_id"],
            ["verdicts.id"],
            name=op.f("fk_review_pending_verdict_id_verdicts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["comparison_id"],
            ["comparisons.id"],
            name=op.f("fk_review_pending_comparison_id_comparisons"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_review_pending_batch_id_batches"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("verdict_id", name=op.f("pk_review_pending")),
    )
    op.create_index("ix_review_pending_comparison", "review_pending", ["comparison_id"])
    op.create_index("ix_review_pending_pair", "review_pending", ["pair_key"])
    op.create_index("ix_review_pending_judge", "review_pending", ["judge", "verdict_id"])
    op.create_index("ix_review_pending_batch", "review_pending", ["batch_id", "verdict_id"])
    op.execute(BACKFILL)


def downgrade() -> None:
    op.drop_index("ix_review_pending_batch", table_name="review_pending")
    op.drop_index("ix_review_pending_judge", table_name="review_pending")
    op.drop_index("ix_review_pending_pair", table_name="review_pending")
    op.drop_index("ix_review_pending_comparison", table_name="review_pending")
    op.drop_table("review_pending")
