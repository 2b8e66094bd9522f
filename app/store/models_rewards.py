"""Rewards scored for training loops, with the caller's run and step (issue 17).

A :class:`RewardItem` is one item of one reward request as the trainer saw
it: its score (or why it had none), and the stored label it came from (a
rating, or a comparison against the reference). It is keyed by the request
it came in (run, step, idempotency key, content and occurrence), so a client
retrying the same batch finds the same rows instead of adding more.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.store.models import Base, JsonType, UtcDateTime, utcnow

__all__ = ["Base", "RewardItem"]


class RewardItem(Base):
    """One scored (or unscored) item of a reward request."""

    __tablename__ = "reward_items"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    item_key: Mapped[str] = mapped_column(String(64), unique=True)
    """Hash of (scorer, run, step, idempotency key, item content, occurrence in the request)."""
    score_key: Mapped[str] = mapped_column(String(64), index=True)
    """The label key of the rating or comparison that scores this content with this scorer."""
    run: Mapped[str | None] = mapped_column(String(256))
    step: Mapped[int | None] = mapped_column(Integer)
    idempotency_key: Mapped[str | None] = mapped_column(String(256))
    scorer: Mapped[str] = mapped_column(String(16))
    """rubric, reward_model or pairwise."""
    judge: Mapped[str] = mapped_column(String(256))
    prompt: Mapped[Any] = mapped_column(JsonType)
    completion: Mapped[Any] = mapped_column(JsonType)
    reference: Mapped[Any | None] = mapped_column(JsonType)
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JsonType)
    status: Mapped[str] = mapped_column(String(16))
    """scored, failed (the judge failed), deadline (not scored in time) or invalid."""
    reason: Mapped[str | None] = mapped_column(String(64))
    """Why there is no score: the error class, ``deadline``, or the input rule broken."""
    score: Mapped[float | None] = mapped_column(Float)
    raw_score: Mapped[float | None] = mapped_column(Float)
    passed: Mapped[bool | None] = mapped_column(Boolean)
    """Desirable for KTO: the rubric's threshold, sigmoid ≥ 0.5, or P(≻ reference) > 0.5."""
    rating_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("ratings.id", ondelete="SET NULL")
    )
    comparison_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("comparisons.id", ondelete="SET NULL")
    )
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index("ix_reward_items_run_step", "run", "step"),
        Index("ix_reward_items_created_at_id", "created_at", "id"),
    )
