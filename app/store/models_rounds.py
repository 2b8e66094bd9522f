"""RLAIF rounds: policy, checkpoint, prompts, strategy, judge and parent (issue 16).

A :class:`Round` is one turn of the loop: the policy at a checkpoint samples
candidates for a prompt set (a generation), the round's judge turns them into
chosen/rejected pairs by a strategy (a selection), and, when the round has a
parent, the same judge compares this round's policy with the parent's on the
prompts both rounds share (the head-to-head, one :class:`RoundMatchup` per
shared prompt, each a stored comparison judged through the pairwise protocol).

``params`` holds everything that defines the round's data; a run under the
same name with other parameters is refused, so a name always means one set
of labels.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.store.models import Base, IdType, JsonType, UtcDateTime, utcnow

__all__ = ["Base", "Round", "RoundMatchup"]

ROUND_STAGES = ("generate", "select", "compare", "done")


class Round(Base):
    """One round: what it sampled from, on which prompts, judged how, and after which round."""

    __tablename__ = "rounds"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(512), unique=True)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("rounds.id", ondelete="RESTRICT"), index=True
    )
    policy: Mapped[str] = mapped_column(String(256))
    """The policy spec, ``provider:model``, as given."""
    checkpoint: Mapped[str | None] = mapped_column(String(256))
    """The label the user gives the policy's weights."""
    prompts_source: Mapped[str] = mapped_column(String(1024))
    """The prompts file (an absolute path), or ``http``."""
    prompt_set_key: Mapped[str] = mapped_column(String(64))
    """SHA-256 over the prompt set's prompt keys, sorted: the same prompts, the same key."""
    prompt_count: Mapped[int] = mapped_column(Integer)
    strategy: Mapped[str] = mapped_column(String(64))
    judge: Mapped[str] = mapped_column(String(256))
    """The judge's label (a named judge's name, or its spec)."""
    params: Mapped[dict[str, Any]] = mapped_column(JsonType)
    """Everything that defines the round's data: policy and its options, checkpoint, n,
    sampling, the prompt set, strategy and its options, the judge's fingerprint, the parent."""
    generation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("generations.id", ondelete="SET NULL")
    )
    selection_run_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("selection_runs.id", ondelete="SET NULL")
    )
    """The strategy's run over the generation: the chosen/rejected pairs the round exports."""
    batch_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("batches.id", ondelete="SET NULL")
    )
    """The head-to-head's comparisons (rounds with a parent)."""
    stage: Mapped[str] = mapped_column(String(16), default="generate")
    """The step the round is at: generate, select, compare, done."""
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        CheckConstraint(
            "stage IN ('generate', 'select', 'compare', 'done')",
            name="stage",
        ),
    )


class RoundMatchup(Base):
    """A prompt both a round and its parent sampled: their answers as one comparison.

    ``response_a`` of the comparison is this round's candidate and
    ``response_b`` the parent's, so a verdict of ``a`` is a win for the round.
    """

    __tablename__ = "round_matchups"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    round_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("rounds.id", ondelete="CASCADE"))
    prompt_key: Mapped[str] = mapped_column(String(64))
    candidate_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("generation_candidates.id", ondelete="SET NULL")
    )
    parent_candidate_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("generation_candidates.id", ondelete="SET NULL")
    )
    comparison_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("comparisons.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("round_id", "prompt_key", name="uq_round_matchups_prompt"),)
