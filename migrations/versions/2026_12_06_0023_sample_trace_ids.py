"""sample trace ids

A stored generation sample keeps the OpenTelemetry trace id of the policy
call that drew it (null when tracing was off, and for a provider batch's
result), as a judge call does.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 04:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("generation_samples") as batch:
        batch.add_column(sa.Column("trace_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("generation_samples") as batch:
        batch.drop_column("trace_id")
