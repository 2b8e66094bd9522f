"""Strategy runs that turn a prompt's candidates into one preference (issue 16).

A :class:`SelectionRun` is one strategy with one judge and one set of
options over one generation, keyed by all of them (``run_key``): running
the same selection again finds the same run and resumes it. Its
:class:`Selection` rows are the decisions, one per prompt at most (unique
on run and prompt): chosen and rejected candidates with their scores, or
the reason the prompt has none. The evidence stays where it always lives
(comparisons and their verdicts, ratings, every judge call); ``details``
points at it by id and keeps what the strategy computed from it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
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

from app.store.models import Base, IdType, JsonType, UtcDateTime, utcnow

__all__ = ["Base", "Selection", "SelectionRun"]


class SelectionRun(Base):
    """One strategy, judge and option set applied to one generation."""

    __tablename__ = "selection_runs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    run_key: Mapped[str] = mapped_column(String(64), unique=True)
    """Hash of (generation, strategy, judge configuration, options): the same selection again."""
    generation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("generations.id", ondelete="CASCADE"), index=True
    )
    strategy: Mapped[str] = mapped_column(String(32))
    judge: Mapped[str] = mapped_column(String(256))
    judge_spec: Mapped[str] = mapped_column(String(256))
    judge_config: Mapped[dict[str, Any]] = mapped_column(JsonType)
    options: Mapped[dict[str, Any]] = mapped_column(JsonType)
    """margin, budget, confidence, seed, rubric: whatever the strategy's decisions depend on."""
    status: Mapped[str] = mapped_column(String(16), default="running")
    """running (prompts left to decide, or the last run stopped), or done."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        CheckConstraint(
            "strategy IN ('all-pairs', 'best-vs-worst', 'tournament')", name="strategy"
        ),
    )


class Selection(Base):
    """A prompt's decision in a run: chosen ≻ rejected, or skipped with the reason."""

    __tablename__ = "selections"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("selection_runs.id", ondelete="CASCADE"))
    prompt_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("generation_prompts.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16))
    """selected or skipped."""
    skip_reason: Mapped[str | None] = mapped_column(String(32))
    chosen_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("generation_candidates.id", ondelete="CASCADE"), index=True
    )
    rejected_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("generation_candidates.id", ondelete="CASCADE"), index=True
    )
    chosen_score: Mapped[float | None] = mapped_column(Float)
    rejected_score: Mapped[float | None] = mapped_column(Float)
    margin: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JsonType)
    """The candidates (ids, lengths) in the strategy's numbering, the comparison or rating
    ids judged, the scores or fit computed from them, and any failure."""
    judgments: Mapped[int] = mapped_column(Integer, default=0)
    """Comparisons (pairwise strategies) or ratings (best-vs-worst) the decision rests on."""
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    """1, plus one per re-run that decided again a prompt skipped for a judge failure."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("run_id", "prompt_id", name="uq_selections_run_prompt"),
        CheckConstraint("status IN ('selected', 'skipped')", name="status"),
        CheckConstraint(
            "(status = 'selected' AND chosen_id IS NOT NULL AND rejected_id IS NOT NULL"
            " AND skip_reason IS NULL) OR (status = 'skipped' AND chosen_id IS NULL"
            " AND rejected_id IS NULL AND skip_reason IS NOT NULL)",
            name="decided",
        ),
        Index("ix_selections_run_status", "run_id", "status"),
    )
