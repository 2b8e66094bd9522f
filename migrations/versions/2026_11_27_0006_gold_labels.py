"""gold labels and reviews

Human labels (imported data sets, reviews over HTTP) in their own table,
keyed by a hash of the pair's content that comparisons now carry too
(``comparisons.pair_key``); existing comparisons are backfilled.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 16:30:00
"""

import hashlib
from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BACKFILL_CHUNK = 1000


def upgrade() -> None:
    op.create_table(
        "gold_labels",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("pair_key", sa.String(length=64), nullable=False),
        sa.Column("dedupe_key", sa.String(length=64), nullable=False),
        sa.Column("winner", sa.String(length=8), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("origin", sa.String(length=1024), nullable=True),
        sa.Column("external_id", sa.String(length=512), nullable=True),
        sa.Column("comparison_id", sa.Uuid(), nullable=True),
        sa.Column("reviewer", sa.String(length=256), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("votes", JSON_TYPE, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("winner IN ('a', 'b', 'tie')", name=op.f("ck_gold_labels_winner")),
        sa.CheckConstraint("source IN ('import', 'review')", name=op.f("ck_gold_labels_source")),
        sa.ForeignKeyConstraint(
            ["comparison_id"],
            ["comparisons.id"],
            name=op.f("fk_gold_labels_comparison_id_comparisons"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gold_labels")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_gold_labels_dedupe_key")),
    )
    with op.batch_alter_table("gold_labels", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gold_labels_pair_key"), ["pair_key"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_gold_labels_comparison_id"), ["comparison_id"], unique=False
        )
    with op.batch_alter_table("comparisons", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pair_key", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_comparisons_pair_key"), ["pair_key"], unique=False)
    _backfill_pair_keys()


def downgrade() -> None:
    with op.batch_alter_table("comparisons", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_comparisons_pair_key"))
        batch_op.drop_column("pair_key")
    with op.batch_alter_table("gold_labels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gold_labels_comparison_id"))
        batch_op.drop_index(batch_op.f("ix_gold_labels_pair_key"))
    op.drop_table("gold_labels")


# A frozen copy of app.keys.pair_key as of this revision: a migration
# must compute what the code of its time computed, whatever the code does later.
def _pair_key(prompt: Any, response_a: Any, response_b: Any) -> str:
    def messages(value: Any) -> list[dict[str, str]]:
        if isinstance(value, str):
            return [{"role": "user", "content": value}]
        return [{"role": m["role"], "content": m["content"]} for m in value]

    def content(value: Any) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            value = value[0]
        text: str = value["content"]
        return text

    document = {"prompt": messages(prompt), "a": content(response_a), "b": content(response_b)}
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _backfill_pair_keys() -> None:
    table = sa.table(
        "comparisons",
        sa.column("id", sa.Uuid()),
        sa.column("pair_key", sa.String()),
        sa.column("prompt", JSON_TYPE),
        sa.column("response_a", JSON_TYPE),
        sa.column("response_b", JSON_TYPE),
    )
    connection = op.get_bind()
    while True:
        rows = connection.execute(
            sa.select(table.c.id, table.c.prompt, table.c.response_a, table.c.response_b)
            .where(table.c.pair_key.is_(None))
            .limit(BACKFILL_CHUNK)
        ).all()
        if not rows:
            return
        connection.execute(
            sa.update(table)
            .where(table.c.id == sa.bindparam("row_id"))
            .values(pair_key=sa.bindparam("key")),
            [{"row_id": row.id, "key": _pair_key(*row[1:])} for row in rows],
        )
