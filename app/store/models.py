"""SQLAlchemy models.

Machine labels never overwrite anything: a re-judged comparison gets a new
verdict row and new call rows, and the newest verdict is the current one.
Every model call, failed attempts included, is a ``judge_calls`` row.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# A fixed naming convention keeps constraint names identical on SQLite and
# PostgreSQL, so migrations can drop and alter them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JsonType = JSON().with_variant(JSONB(), "postgresql")
IdType = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Comparison(Base):
    """A pair of responses to judge with one judge configuration, keyed by content."""

    __tablename__ = "comparisons"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    label_key: Mapped[str] = mapped_column(String(64), unique=True)
    pair_key: Mapped[str | None] = mapped_column(String(64), index=True)
    """Hash of the prompt and both responses alone (any judge): joins gold labels."""
    external_id: Mapped[str | None] = mapped_column(String(512))
    external_ids: Mapped[list[str] | None] = mapped_column(JsonType)
    """Every distinct id of the lines merged into this comparison, the first line's first."""
    prompt: Mapped[Any] = mapped_column(JsonType)
    response_a: Mapped[Any] = mapped_column(JsonType)
    response_b: Mapped[Any] = mapped_column(JsonType)
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JsonType)
    judge: Mapped[str] = mapped_column(String(256))
    judge_spec: Mapped[str] = mapped_column(String(256))
    judge_config: Mapped[dict[str, Any]] = mapped_column(JsonType)
    template_version: Mapped[str] = mapped_column(String(64))
    constitution: Mapped[str | None] = mapped_column(String(256))
    """The constitution's ref (id@version:hash) when judged under its principles."""
    criteria: Mapped[str | None] = mapped_column(Text)
    """What the pair was judged by (a named entry's text), in its label key (migration 0018)."""
    reference: Mapped[Any] = mapped_column(JsonType, nullable=True)
    """A reference answer the template showed the judge, as given (migration 0018)."""
    principle_count: Mapped[int | None] = mapped_column(Integer)
    """How many of its principles each verdict samples and averages."""
    status: Mapped[str] = mapped_column(String(16), default="pending")
    error_class: Mapped[str | None] = mapped_column(String(64))
    batch_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("batches.id", ondelete="SET NULL")
    )
    source_line: Mapped[int | None] = mapped_column(Integer)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    verdicts: Mapped[list[Verdict]] = relationship(
        back_populates="comparison", order_by="Verdict.id", lazy="raise"
    )
    calls: Mapped[list[JudgeCall]] = relationship(
        back_populates="comparison", order_by="JudgeCall.id", lazy="raise"
    )
    jury_votes: Mapped[list[JuryVote]] = relationship(order_by="JuryVote.id", lazy="raise")

    __table_args__ = (
        Index("ix_comparisons_created_at_id", "created_at", "id"),
        Index("ix_comparisons_judge", "judge"),
        # GET /v1/comparisons?judge=…: one judge's rows in page order, from the cursor on
        # (migration 0024). Without it a page walks every judge's rows from the cursor (a rare
        # judge's page reads most of them).
        Index("ix_comparisons_judge_created", "judge", "created_at", "id"),
        Index("ix_comparisons_status", "status"),
        Index("ix_comparisons_claim", "batch_id", "status", "lease_expires_at"),
        # A batch's pages in order (and any batch filter): migration 0021, in place of
        # an index on batch_id alone.
        Index("ix_comparisons_batch_created", "batch_id", "created_at", "id"),
        # Claims take the oldest pending pairs: walked in order over pending rows only,
        # not sorted from every pending row of a million-line batch per claim.
        # The status leads though the index holds only pending rows: without statistics
        # (SQLite's, as the app never runs ANALYZE) an equality on it is what wins the plan.
        Index(
            "ix_comparisons_pending",
            "status",
            "created_at",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index(
            "ix_comparisons_batch_pending",
            "batch_id",
            "status",
            "created_at",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )


class Batch(Base):
    """Comparisons enqueued together (a file, an upload); workers claim its pending rows."""

    __tablename__ = "batches"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(512), unique=True)
    source: Mapped[str] = mapped_column(String(1024))
    judge: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16), default="open")
    submitted: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    """The API key that submitted the batch; its workers' calls count against that key."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class Verdict(Base):
    """One machine decision on a comparison."""

    __tablename__ = "verdicts"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    comparison_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("comparisons.id", ondelete="CASCADE"), index=True
    )
    winner: Mapped[str] = mapped_column(String(8))
    confidence: Mapped[float | None] = mapped_column(Float)
    position_consistent: Mapped[bool | None] = mapped_column(Boolean)
    soft_preference: Mapped[float | None] = mapped_column(Float)
    rationale: Mapped[str] = mapped_column(Text, default="")
    length_a: Mapped[int] = mapped_column(Integer)
    length_b: Mapped[int] = mapped_column(Integer)
    principles: Mapped[list[dict[str, Any]] | None] = mapped_column(JsonType)
    """Under a constitution: each sampled principle and its own decision."""
    disagreement: Mapped[float | None] = mapped_column(Float)
    """A jury's: 1 - (count of its most common member vote) / (counted votes); None otherwise."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    comparison: Mapped[Comparison] = relationship(back_populates="verdicts", lazy="raise")

    __table_args__ = (
        Index("ix_verdicts_winner", "winner"),
        Index("ix_verdicts_disagreement", "disagreement"),
        # The review queue: split jury verdicts in id order; juries' verdicts only.
        Index(
            "ix_verdicts_jury",
            "id",
            "disagreement",
            postgresql_where=text("disagreement IS NOT NULL"),
            sqlite_where=text("disagreement IS NOT NULL"),
        ),
        # The review queue's candidates with reviewed pairs too (split jury verdicts in id
        # order) with their comparison, read from this small index alone (migration 0024):
        # ix_verdicts_jury lacks the comparison id, so every candidate cost a read of the
        # verdicts table.
        Index(
            "ix_verdicts_jury_queue",
            "id",
            "disagreement",
            "comparison_id",
            postgresql_where=text("disagreement IS NOT NULL"),
            sqlite_where=text("disagreement IS NOT NULL"),
        ),
    )


class JuryVote(Base):
    """One jury member's vote on a comparison: its verdict in brief, or its failure.

    ``verdict_id`` is the verdict of the jury run the vote was cast in; it
    is None for every vote of a run that missed its quorum (no verdict). A
    failed member's vote has no winner and was not counted. The member's
    calls point here through ``judge_calls.jury_vote_id``.
    """

    __tablename__ = "jury_votes"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    comparison_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("comparisons.id", ondelete="CASCADE"), index=True
    )
    verdict_id: Mapped[int | None] = mapped_column(
        ForeignKey("verdicts.id", ondelete="SET NULL"), index=True
    )
    member: Mapped[str] = mapped_column(String(256))
    """The member's name in the judges file, or its spec."""
    member_spec: Mapped[str] = mapped_column(String(256))
    member_config: Mapped[dict[str, Any]] = mapped_column(JsonType)
    winner: Mapped[str | None] = mapped_column(String(8))
    """a, b or tie; None when the member failed (its vote is then not counted)."""
    confidence: Mapped[float | None] = mapped_column(Float)
    position_consistent: Mapped[bool | None] = mapped_column(Boolean)
    soft_preference: Mapped[float | None] = mapped_column(Float)
    rationale: Mapped[str | None] = mapped_column(Text)
    error_class: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class JudgeCall(Base):
    """One model call: the order shown, what was sent and what came back, or the error."""

    __tablename__ = "judge_calls"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    comparison_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("comparisons.id", ondelete="CASCADE"), index=True
    )
    rating_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("ratings.id", ondelete="CASCADE"), index=True
    )
    revision_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("revisions.id", ondelete="CASCADE"), index=True
    )
    verdict_id: Mapped[int | None] = mapped_column(
        ForeignKey("verdicts.id", ondelete="SET NULL"), index=True
    )
    jury_vote_id: Mapped[int | None] = mapped_column(
        ForeignKey("jury_votes.id", ondelete="SET NULL"), index=True
    )
    """For a jury's comparison: the member vote this call was part of."""
    order: Mapped[str | None] = mapped_column("shown_order", String(2))
    """The order shown (ab/ba) for a pairwise call; None for a rating call."""
    attempt: Mapped[int] = mapped_column(Integer)
    provider: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(256))
    template_version: Mapped[str] = mapped_column(String(64))
    parameters: Mapped[dict[str, Any]] = mapped_column(JsonType)
    raw_output: Mapped[str | None] = mapped_column(Text)
    parsed: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_read_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_write_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[Decimal | None] = mapped_column(Numeric(14, 8))
    latency_ms: Mapped[float] = mapped_column(Float)
    error_class: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    """The API key whose request (or batch) made the call: what its daily budget counts."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    comparison: Mapped[Comparison | None] = relationship(back_populates="calls", lazy="raise")
    rating: Mapped[Rating | None] = relationship(back_populates="calls", lazy="raise")
    revision: Mapped[Revision | None] = relationship(back_populates="calls", lazy="raise")

    __table_args__ = (
        # A call belongs to exactly one comparison, rating or revision run.
        CheckConstraint(
            "(CASE WHEN comparison_id IS NULL THEN 0 ELSE 1 END"
            " + CASE WHEN rating_id IS NULL THEN 0 ELSE 1 END"
            " + CASE WHEN revision_id IS NULL THEN 0 ELSE 1 END) = 1",
            name="one_subject",
        ),
        # A key's spend today: one range scan per budgeted request.
        Index("ix_judge_calls_key_spend", "api_key_id", "created_at"),
    )


class Rating(Base):
    """One response graded by one judge against one rubric, keyed by content.

    The score is set once, when a judging run succeeds; a failed run leaves
    it empty and records the error class, so nothing is ever invented.
    """

    __tablename__ = "ratings"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    label_key: Mapped[str] = mapped_column(String(64), unique=True)
    content_key: Mapped[str] = mapped_column(String(64), index=True)
    """Hash of (prompt, response) alone: finds a pairwise loser's own rating."""
    external_id: Mapped[str | None] = mapped_column(String(512))
    prompt: Mapped[Any] = mapped_column(JsonType)
    response: Mapped[Any] = mapped_column(JsonType)
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JsonType)
    judge: Mapped[str] = mapped_column(String(256))
    judge_spec: Mapped[str] = mapped_column(String(256))
    judge_config: Mapped[dict[str, Any]] = mapped_column(JsonType)
    template_version: Mapped[str] = mapped_column(String(64))
    rubric: Mapped[str] = mapped_column(String(64))
    rubric_version: Mapped[str] = mapped_column(String(128))
    rubric_text: Mapped[str] = mapped_column(Text)
    scale_min: Mapped[int] = mapped_column(Integer)
    scale_max: Mapped[int] = mapped_column(Integer)
    threshold: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    error_class: Mapped[str | None] = mapped_column(String(64))
    score: Mapped[int | None] = mapped_column(Integer)
    passed: Mapped[bool | None] = mapped_column(Boolean)
    rationale: Mapped[str | None] = mapped_column(Text)
    source_line: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    calls: Mapped[list[JudgeCall]] = relationship(
        back_populates="rating", order_by="JudgeCall.id", lazy="raise"
    )

    __table_args__ = (
        Index("ix_ratings_created_at_id", "created_at", "id"),
        Index("ix_ratings_judge", "judge"),
    )


class Feedback(Base):
    """A human thumbs-up/down on a completion from live traffic; never a machine label."""

    __tablename__ = "feedback"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    idempotency_key: Mapped[str] = mapped_column(String(256), unique=True)
    """The client's key, or else the body's hash: a retried POST never counts twice."""
    body_hash: Mapped[str] = mapped_column(String(64))
    content_key: Mapped[str] = mapped_column(String(64))
    """Hash of (prompt, completion) as ratings and verdicts compute it; not indexed, as no
    query looks feedback up by it and every index costs bulk ingestion a random insert."""
    prompt: Mapped[Any] = mapped_column(JsonType)
    completion: Mapped[Any] = mapped_column(JsonType)
    label: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str | None] = mapped_column(String(256))
    user_id: Mapped[str | None] = mapped_column(String(256))
    session_id: Mapped[str | None] = mapped_column(String(256))
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JsonType)
    occurred_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (Index("ix_feedback_created_at_id", "created_at", "id"),)


class ApiKey(Base):
    """An API key for the HTTP service, stored only as its SHA-256."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JsonType)
    """Any of read, label, review, admin (admin may do everything)."""
    daily_budget_usd: Mapped[Decimal | None] = mapped_column(Numeric(14, 8))
    """Model spend allowed per UTC day, from ``judge_calls.cost_usd``; None: no limit."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Revision(Base):
    """One critique → revision run on a response under a constitution, keyed by content.

    ``final_response`` is set only when a run finishes and a revision
    happened; a run whose first critique found nothing to fix is ``done``
    with ``revised`` false. A failed run keeps the rounds it finished.
    """

    __tablename__ = "revisions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    label_key: Mapped[str] = mapped_column(String(64), unique=True)
    external_id: Mapped[str | None] = mapped_column(String(512))
    prompt: Mapped[Any] = mapped_column(JsonType)
    response: Mapped[Any | None] = mapped_column(JsonType)
    """The initial response: given, or written by the generator (None until it is)."""
    generator: Mapped[str | None] = mapped_column(String(256))
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JsonType)
    judge: Mapped[str] = mapped_column(String(256))
    judge_spec: Mapped[str] = mapped_column(String(256))
    judge_config: Mapped[dict[str, Any]] = mapped_column(JsonType)
    constitution: Mapped[str] = mapped_column(String(256))
    constitution_id: Mapped[str] = mapped_column(String(128), index=True)
    constitution_version: Mapped[str] = mapped_column(String(64))
    rounds_requested: Mapped[int] = mapped_column(Integer)
    principle: Mapped[str | None] = mapped_column(String(128))
    seed: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    error_class: Mapped[str | None] = mapped_column(String(64))
    revised: Mapped[bool | None] = mapped_column(Boolean)
    final_response: Mapped[str | None] = mapped_column(Text)
    batch_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("batches.id", ondelete="SET NULL"), index=True
    )
    source_line: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    rounds: Mapped[list[RevisionRound]] = relationship(
        back_populates="revision", order_by="RevisionRound.id", lazy="raise"
    )
    calls: Mapped[list[JudgeCall]] = relationship(
        back_populates="revision", order_by="JudgeCall.id", lazy="raise"
    )

    __table_args__ = (Index("ix_revisions_created_at_id", "created_at", "id"),)


class RevisionRound(Base):
    """One round of a revision run: the principle, its critique, and the revision if any."""

    __tablename__ = "revision_rounds"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    revision_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("revisions.id", ondelete="CASCADE"), index=True
    )
    attempt: Mapped[int] = mapped_column(Integer)
    """1 for the first run; a failed run judged again adds rounds with attempt 2, and so on."""
    round: Mapped[int] = mapped_column(Integer)
    principle: Mapped[str] = mapped_column(String(128))
    critique: Mapped[str] = mapped_column(Text)
    needs_revision: Mapped[bool] = mapped_column(Boolean)
    revised_response: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    revision: Mapped[Revision] = relationship(back_populates="rounds", lazy="raise")


class GoldLabel(Base):
    """A human's preference on a pair: imported with a data set, or a review over HTTP.

    Kept apart from machine verdicts and keyed by the pair's content
    (``pair_key``), so it applies to every judge's comparison of that pair.
    """

    __tablename__ = "gold_labels"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    pair_key: Mapped[str] = mapped_column(String(64), index=True)
    dedupe_key: Mapped[str] = mapped_column(String(64), unique=True)
    """Imports: hash of (pair, winner, votes), so importing a file again adds nothing.
    Reviews: unique per review, as every review is a new judgement."""
    winner: Mapped[str] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(16))
    """``import`` (a human-labeled data set) or ``review`` (POST …/reviews)."""
    origin: Mapped[str | None] = mapped_column(String(1024))
    """Where an import came from: the file and its format."""
    external_id: Mapped[str | None] = mapped_column(String(512))
    comparison_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("comparisons.id", ondelete="SET NULL"), index=True
    )
    """The comparison a review was posted on."""
    reviewer: Mapped[str | None] = mapped_column(String(256))
    note: Mapped[str | None] = mapped_column(Text)
    votes: Mapped[list[Any] | None] = mapped_column(JsonType)
    """Individual annotators' votes (a|b|tie) where the data set has several; for an import
    whose lines of one pair disagree, each line's label, in file order."""
    external_ids: Mapped[list[Any] | None] = mapped_column(JsonType)
    """Imports that merged several lines of one pair: each line's id (null where it had none),
    in file order (aligned with ``votes`` when the lines disagree)."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        CheckConstraint("winner IN ('a', 'b', 'tie')", name="winner"),
        CheckConstraint("source IN ('import', 'review')", name="source"),
    )


class ProviderBatch(Base):
    """One submission to a provider's batch API (Anthropic Message Batches, OpenAI Batch).

    Stored as soon as the provider accepts it, so a restarted run polls it
    instead of submitting again. Its comparisons are the ones leased to
    ``lease_owner`` (``provider-batch:<id>``) until their results are written.
    """

    __tablename__ = "provider_batches"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    batch_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("batches.id", ondelete="CASCADE"), index=True
    )
    provider: Mapped[str] = mapped_column(String(64))
    provider_batch_id: Mapped[str] = mapped_column(String(256), unique=True)
    judge: Mapped[str] = mapped_column(String(256))
    lease_owner: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="submitted")
    """submitted (at the provider), collected (results stored), cancelled, or failed
    (refused as a whole by the provider; its comparisons are pending again)."""
    provider_status: Mapped[str | None] = mapped_column(String(32))
    errors: Mapped[list[dict[str, Any]] | None] = mapped_column(JsonType)
    """A failed submission's reasons from the provider: ``[{code, message, line}]``."""
    pairs: Mapped[int] = mapped_column(Integer)
    requests: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("ix_provider_batches_status", "status"),)
