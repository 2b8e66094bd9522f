"""generation lookup indexes

``ix_generation_samples_claim_order`` (generation_id, status, id): a claim
reads a generation's pending samples in id order instead of sorting them.
``ix_generation_samples_lease`` (lease_owner, status, id) over leased
samples: a worker's leases without reading every sample.
``ix_generation_prompts_page`` (generation_id, source_line, created_at,
id): a generation's prompts a page at a time, in file order
(declared in app/store/models_generation.py).

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06 06:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_generation_samples_claim_order",
        "generation_samples",
        ["generation_id", "status", "id"],
    )
    op.create_index(
        "ix_generation_samples_lease",
        "generation_samples",
        ["lease_owner", "status", "id"],
        postgresql_where=sa.text("lease_owner IS NOT NULL"),
        sqlite_where=sa.text("lease_owner IS NOT NULL"),
    )
    op.create_index(
        "ix_generation_prompts_page",
        "generation_prompts",
        ["generation_id", "source_line", "created_at", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_generation_prompts_page", table_name="generation_prompts")
    op.drop_index("ix_generation_samples_lease", table_name="generation_samples")
    op.drop_index("ix_generation_samples_claim_order", table_name="generation_samples")
