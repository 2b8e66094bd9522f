"""templates

A pair's ``criteria`` (the text judged by, a named entry resolved) and
``reference`` answer, stored on its comparison: both are part of its label
key, and a worker judging a queued pair reads them back from here.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 23:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("comparisons") as batch:
        batch.add_column(sa.Column("criteria", sa.Text(), nullable=True))
        batch.add_column(sa.Column("reference", JSON_TYPE, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("comparisons") as batch:
        batch.drop_column("reference")
        batch.drop_column("criteria")
