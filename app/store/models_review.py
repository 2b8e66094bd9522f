"""Human review queues, their items, and each reviewer's assignment on an item (issue 18).

A queue is a fixed set of pairs chosen when it is made (jury disagreements,
an audit sample, …). Each item is answered by up to ``overlap`` reviewers.
A reviewer's assignment on an item holds the left/right order they were
shown (stored, so the answer maps back to a/b through the protocol's one
mapping function), a lease while they look at it, and then their answer.

``review_pending`` (issue 20) is the jury review queue's work list: the
split jury verdicts no human has labeled yet, kept by the writes.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.store.models import (
    Base,
    IdType,
    JsonType,
    UtcDateTime,
    utcnow,
)

QUEUE_KINDS = (
    "disagreement",
    "inconsistent",
    "low-confidence",
    "judges-disagree",
    "audit",
    "no-gold",
)


class ReviewQueue(Base):
    """A named set of pairs for people to review, with guidelines and an overlap k."""

    __tablename__ = "review_queues"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    batch_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("batches.id", ondelete="SET NULL")
    )
    params: Mapped[dict[str, Any]] = mapped_column(JsonType)
    """How the items were chosen: the kind's threshold, an audit's size and seed."""
    overlap: Mapped[int] = mapped_column(Integer)
    """k: how many reviewers answer each item before it leaves the queue."""
    guidelines: Mapped[str] = mapped_column(Text, default="")
    """Markdown shown beside every item."""
    show_machine: Mapped[bool] = mapped_column(Boolean, default=False)
    """Reviewers see the machine verdicts; off (blind review) by default."""
    items: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        CheckConstraint(
            "kind IN (" + ", ".join(f"'{kind}'" for kind in QUEUE_KINDS) + ")", name="kind"
        ),
        CheckConstraint("overlap >= 1", name="overlap"),
    )


class ReviewItem(Base):
    """One pair in a queue: the comparison shown, and how many reviewers answered it."""

    __tablename__ = "review_items"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    queue_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("review_queues.id", ondelete="CASCADE"))
    comparison_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("comparisons.id", ondelete="CASCADE"), index=True
    )
    pair_key: Mapped[str | None] = mapped_column(String(64))
    answers: Mapped[int] = mapped_column(Integer, default=0)
    """Answers counted towards k (skips are not)."""
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    """k reviewers answered: the item left the queue and its gold was decided."""
    gold_label_id: Mapped[int | None] = mapped_column(
        ForeignKey("gold_labels.id", ondelete="SET NULL")
    )
    """The review written from the answers (None: not done, or no majority)."""

    __table_args__ = (
        UniqueConstraint("queue_id", "comparison_id"),
        # Serving the next item: the open items of a queue in order.
        Index("ix_review_items_serve", "queue_id", "done", "id"),
    )


class ReviewAssignment(Base):
    """A reviewer on an item: the order they see, their lease, then their answer."""

    __tablename__ = "review_assignments"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("review_items.id", ondelete="CASCADE"))
    queue_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("review_queues.id", ondelete="CASCADE"))
    reviewer: Mapped[str] = mapped_column(String(256))
    shown_order: Mapped[str] = mapped_column(String(2))
    """ab: left is response_a; ba: left is response_b. Drawn once per (reviewer, item)."""
    state: Mapped[str] = mapped_column(String(16), default="leased")
    """leased (being looked at, until lease_expires_at), answered, or skipped."""
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    choice: Mapped[str | None] = mapped_column(String(8))
    """What was pressed: left, right, tie or skip."""
    winner: Mapped[str | None] = mapped_column(String(8))
    """The choice mapped to the comparison's a, b or tie (None for a skip)."""
    note: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("item_id", "reviewer"),
        CheckConstraint("shown_order IN ('ab', 'ba')", name="shown_order"),
        CheckConstraint("state IN ('leased', 'answered', 'skipped')", name="state"),
        # The reviewer's furthest item (where serving resumes), and their leases.
        Index("ix_review_assignments_reviewer", "queue_id", "reviewer", "item_id"),
        Index("ix_review_assignments_state", "queue_id", "reviewer", "state"),
        Index("ix_review_assignments_item", "item_id", "state"),
    )


class ReviewPending(Base):
    """A split jury verdict no human has reviewed yet: the review queue's work list (issue 20).

    One row per current jury verdict with a disagreement above 0 whose pair
    has no gold label (by the comparison or by its pair key), kept by the
    writes (app/store/review_pending.py): storing a jury verdict adds its row
    and drops the comparison's older ones, a gold label drops its pair's
    rows, deleting a gold label puts them back. Rows are a superset: the
    queue still checks each row it returns, so a row left behind (two writes
    racing) costs a skipped row, never a wrong answer.
    """

    __tablename__ = "review_pending"

    verdict_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("verdicts.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    comparison_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("comparisons.id", ondelete="CASCADE")
    )
    pair_key: Mapped[str | None] = mapped_column(String(64))
    judge: Mapped[str] = mapped_column(String(256))
    batch_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("batches.id", ondelete="SET NULL")
    )
    disagreement: Mapped[float] = mapped_column(Float)
    """The verdict's, copied with the comparison's judge and batch: the queue's filters read
    this table alone."""

    __table_args__ = (
        # A newer verdict or a review drops rows by the comparison or the pair key.
        Index("ix_review_pending_comparison", "comparison_id"),
        Index("ix_review_pending_pair", "pair_key"),
        # The queue of one judge or one batch, in verdict-id order.
        Index("ix_review_pending_judge", "judge", "verdict_id"),
        Index("ix_review_pending_batch", "batch_id", "verdict_id"),
    )
