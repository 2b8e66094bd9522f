"""Generation jobs and the candidates a policy sampled (issue 16).

A :class:`Generation` samples ``n`` answers per prompt from one policy at
one checkpoint with one set of sampling parameters. Its unit of work is the
:class:`GenerationSample` row — one (generation, prompt, sample index) —
claimed under a lease as comparisons are, so a killed run resumes without
sampling any index twice. A sample that succeeded points at its
:class:`GenerationCandidate`: the distinct text, stored once per prompt
with a count of the samples that produced it. A failed sample keeps its
error and points at nothing; no text is ever made up for it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.store.models import Base, IdType, JsonType, UtcDateTime, utcnow

__all__ = [
    "Base",
    "Generation",
    "GenerationCandidate",
    "GenerationPrompt",
    "GenerationSample",
]


class Generation(Base):
    """One sampling job: a policy at a checkpoint, ``n`` samples per prompt, fixed parameters."""

    __tablename__ = "generations"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(512), unique=True)
    source: Mapped[str] = mapped_column(String(1024))
    """The prompts file, or ``http`` for a request."""
    policy: Mapped[str] = mapped_column(String(256))
    """The policy spec, ``provider:model`` (``openai:…``, ``anthropic:…``, ``local:…``)."""
    policy_config: Mapped[dict[str, Any]] = mapped_column(JsonType)
    """Everything about the policy besides sampling: base URL, provider options."""
    checkpoint: Mapped[str | None] = mapped_column(String(256))
    """The label the user gives the policy's weights (say ``sft-step-2000``)."""
    n: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(JsonType)
    """Sampling parameters: temperature, top_p, max_tokens (None where the provider's default)."""
    seed: Mapped[int | None] = mapped_column(Integer)
    """The base seed; each request's seed derives from it and its first sample index."""
    status: Mapped[str] = mapped_column(String(16), default="open")
    """open (work pending or running), done, or cancelled."""
    submitted: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class GenerationPrompt(Base):
    """A prompt of a generation, keyed by its content within it (identical lines merge)."""

    __tablename__ = "generation_prompts"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    generation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("generations.id", ondelete="CASCADE")
    )
    prompt_key: Mapped[str] = mapped_column(String(64))
    """Hash of the prompt alone: the same prompt has the same key in every generation."""
    external_id: Mapped[str | None] = mapped_column(String(512))
    prompt: Mapped[Any] = mapped_column(JsonType)
    """A string, or a list of ``{"role", "content"}`` messages, as given."""
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JsonType)
    source_line: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("generation_id", "prompt_key", name="uq_generation_prompts_key"),
        # A generation's prompts in file order, a page at a time (the candidates' pages;
        # migration 0025).
        Index("ix_generation_prompts_page", "generation_id", "source_line", "created_at", "id"),
    )


class GenerationCandidate(Base):
    """A distinct text sampled for a prompt, stored once, with how many samples gave it."""

    __tablename__ = "generation_candidates"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    generation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("generations.id", ondelete="CASCADE")
    )
    prompt_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("generation_prompts.id", ondelete="CASCADE")
    )
    text_key: Mapped[str] = mapped_column(String(64))
    """SHA-256 of the text: equal texts of one prompt share the row."""
    text: Mapped[str] = mapped_column(Text)
    count: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("prompt_id", "text_key", name="uq_generation_candidates_text"),
        Index("ix_generation_candidates_generation", "generation_id"),
    )


class GenerationSample(Base):
    """One (prompt, sample index) of a generation: the unit of work, then its provenance.

    Pending rows are claimed under a lease. Once sampled, ``status`` is
    ``done`` with a candidate, or ``failed`` with the error and no candidate.
    Samples drawn in one request (OpenAI's native ``n``) share ``request_id``;
    the request's prompt tokens are on its first sample and its completion
    tokens are shared out by text length, so the samples' costs add up to
    the request's.
    """

    __tablename__ = "generation_samples"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    generation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("generations.id", ondelete="CASCADE")
    )
    prompt_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("generation_prompts.id", ondelete="CASCADE")
    )
    sample_index: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    candidate_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("generation_candidates.id", ondelete="SET NULL"), index=True
    )
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    request_id: Mapped[str | None] = mapped_column(String(64))
    seed: Mapped[int | None] = mapped_column(Integer)
    """The seed sent with the request that drew this sample (None: none sent)."""
    model: Mapped[str | None] = mapped_column(String(256))
    """The model id the provider reported."""
    finish_reason: Mapped[str | None] = mapped_column(String(64))
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[Decimal | None] = mapped_column(Numeric(14, 8))
    latency_ms: Mapped[float | None] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error_class: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("prompt_id", "sample_index", name="uq_generation_samples_index"),
        CheckConstraint("status IN ('pending', 'done', 'failed', 'cancelled')", name="status"),
        Index("ix_generation_samples_claim", "generation_id", "status", "lease_expires_at"),
        # A claim takes a generation's oldest pending samples by id: read in that order from
        # the index, not every pending sample of the generation sorted for each claim of 64
        # (migration 0025).
        Index("ix_generation_samples_claim_order", "generation_id", "status", "id"),
        # A worker's leased samples (resume, hand-over, release on stop): only leased rows
        # are in it, and an equality on the owner is enough for both databases to use it.
        Index(
            "ix_generation_samples_lease",
            "lease_owner",
            "status",
            "id",
            postgresql_where=text("lease_owner IS NOT NULL"),
            sqlite_where=text("lease_owner IS NOT NULL"),
        ),
    )
