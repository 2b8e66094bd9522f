"""review queues

Human review queues (``review_queues``), their pairs (``review_items``) and
each reviewer's assignment on a pair: the order shown, a lease, the answer
(``review_assignments``).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
KINDS = ("disagreement", "inconsistent", "low-confidence", "judges-disagree", "audit", "no-gold")


def upgrade() -> None:
    op.create_table(
        "review_queues",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=True),
        sa.Column("params", JSON_TYPE, nullable=False),
        sa.Column("overlap", sa.Integer(), nullable=False),
        sa.Column("guidelines", sa.Text(), nullable=False),
        sa.Column("show_machine", sa.Boolean(), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN (" + ", ".join(f"'{kind}'" for kind in KINDS) + ")",
            name=op.f("ck_review_queues_kind"),
        ),
        sa.CheckConstraint("overlap >= 1", name=op.f("ck_review_queues_overlap")),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_review_queues_batch_id_batches"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_queues")),
        sa.UniqueConstraint("name", name=op.f("uq_review_queues_name")),
    )
    op.create_table(
        "review_items",
        sa.Column("id", ID_TYPE, autoincrement=True, nullable=False),
        sa.Column("queue_id", sa.Uuid(), nullable=False),
        sa.Column("comparison_id", sa.Uuid(), nullable=False),
        sa.Column("pair_key", sa.String(length=64), nullable=True),
        sa.Column("answers", sa.Integer(), nullable=False),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("gold_label_id", ID_TYPE, nullable=True),
        sa.ForeignKeyConstraint(
            ["queue_id"],
            ["review_queues.id"],
            name=op.f("fk_review_items_queue_id_review_queues"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["comparison_id"],
            ["comparisons.id"],
            name=op.f("fk_review_items_comparison_id_comparisons"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["gold_label_id"],
            ["gold_labels.id"],
            name=op.f("fk_review_items_gold_label_id_gold_labels"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_items")),
        sa.UniqueConstraint("queue_id", "comparison_id", name=op.f("uq_review_items_queue_id")),
    )
    with op.batch_alter_table("review_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_review_items_comparison_id"), ["comparison_id"], unique=False
        )
        batch_op.create_index("ix_review_items_serve", ["queue_id", "done", "id"], unique=False)
    op.create_table(
        "review_assignments",
        sa.Column("id", ID_TYPE, autoincrement=True, nullable=False),
        sa.Column("item_id", ID_TYPE, nullable=False),
        sa.Column("queue_id", sa.Uuid(), nullable=False),
        sa.Column("reviewer", sa.String(length=256), nullable=False),
        sa.Column("shown_order", sa.String(length=2), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("choice", sa.String(length=8), nullable=True),
        sa.Column("winner", sa.String(length=8), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "shown_order IN ('ab', 'ba')", name=op.f("ck_review_assignments_shown_order")
        ),
        sa.CheckConstraint(
            "state IN ('leased', 'answered', 'skipped')", name=op.f("ck_review_assignments_state")
        ),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["review_items.id"],
            name=op.f("fk_review_assignments_item_id_review_items"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["queue_id"],
            ["review_queues.id"],
            name=op.f("fk_review_assignments_queue_id_review_queues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_assignments")),
        sa.UniqueConstraint("item_id", "reviewer", name=op.f("uq_review_assignments_item_id")),
    )
    with op.batch_alter_table("review_assignments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_review_assignments_reviewer", ["queue_id", "reviewer", "item_id"], unique=False
        )
        batch_op.create_index(
            "ix_review_assignments_state", ["queue_id", "reviewer", "state"], unique=False
        )
        batch_op.create_index("ix_review_assignments_item", ["item_id", "state"], unique=False)


def downgrade() -> None:
    op.drop_table("review_assignments")
    op.drop_table("review_items")
    op.drop_table("review_queues")
