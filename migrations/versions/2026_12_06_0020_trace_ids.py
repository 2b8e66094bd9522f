"""trace ids

A stored judge call keeps the OpenTelemetry trace id of its span (null when
tracing was off), so a call leads to its trace.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 03:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("judge_calls") as batch:
        batch.add_column(sa.Column("trace_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("judge_calls") as batch:
        batch.drop_column("trace_id")
