"""unindex feedback content key

No query looks feedback up by content key, and on bulk ingestion every
index is one more random B-tree insert per row.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 15:02:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feedback_content_key"))


def downgrade() -> None:
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_feedback_content_key"), ["content_key"], unique=False)
