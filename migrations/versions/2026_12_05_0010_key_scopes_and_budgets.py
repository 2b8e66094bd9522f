"""key scopes and budgets

API keys carry scopes (``read``, ``label``, ``review``, ``admin``) and an
optional daily USD budget; judge calls and batches record the key that made
them, so a key's spend can be summed.

Keys that exist before this migration get the ``admin`` scope: until now any
valid key could do everything, so that keeps every client working. Narrow
them by creating scoped keys (``referee keys create NAME --scope …``) and
revoking the old ones. Calls made before this migration belong to no key.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 20:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scopes", JSON_TYPE, nullable=True))
        batch_op.add_column(
            sa.Column("daily_budget_usd", sa.Numeric(precision=14, scale=8), nullable=True)
        )
    op.execute(sa.text("UPDATE api_keys SET scopes = '[\"admin\"]'"))
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.alter_column("scopes", existing_type=JSON_TYPE, nullable=False)

    for table in ("judge_calls", "batches"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("api_key_id", ID_TYPE, nullable=True))
            batch_op.create_foreign_key(
                batch_op.f(f"fk_{table}_api_key_id_api_keys"),
                "api_keys",
                ["api_key_id"],
                ["id"],
                ondelete="SET NULL",
            )
    with op.batch_alter_table("judge_calls", schema=None) as batch_op:
        batch_op.create_index("ix_judge_calls_key_spend", ["api_key_id", "created_at"])


def downgrade() -> None:
    with op.batch_alter_table("judge_calls", schema=None) as batch_op:
        batch_op.drop_index("ix_judge_calls_key_spend")
    for table in ("batches", "judge_calls"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(
                batch_op.f(f"fk_{table}_api_key_id_api_keys"), type_="foreignkey"
            )
            batch_op.drop_column("api_key_id")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("daily_budget_usd")
        batch_op.drop_column("scopes")
