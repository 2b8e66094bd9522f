"""report index

``ix_comparisons_report`` (judge, batch_id, pair_key, created_at, id): the
judge-quality report's pair-level queries (judges' agreement, gold summary,
call costs) read this index alone instead of the comparisons table and its
prompts and responses (app/store/models_reports.py).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 03:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_comparisons_report",
        "comparisons",
        ["judge", "batch_id", "pair_key", "created_at", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_comparisons_report", table_name="comparisons")
