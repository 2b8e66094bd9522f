"""Making a review queue: which pairs each kind takes, checked before anything is stored.

Kinds: ``disagreement`` (a jury split: disagreement at least ``threshold``,
any split by default), ``inconsistent`` (the verdict changed with the order
shown), ``low-confidence`` (confidence below ``threshold``, 0.6 by
default), ``judges-disagree`` (another judge's current verdict on the same
pair names a different winner), ``audit`` (a uniform random sample of a
batch's judged pairs, seeded, so agreement measured on it is an unbiased
estimate for the batch) and ``no-gold`` (pairs no human label covers). A
pair is in a queue once, however many comparisons of it were selected.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterable
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import InvalidInputError, NotFoundError
from app.labeling.text_rules import CleanStr
from app.store import batches
from app.store import review_queues as store
from app.store.models_review import ReviewQueue

Row = tuple[uuid.UUID, str | None]
"""(comparison id, pair key): one pair of a queue."""

QueueKind = Literal[
    "disagreement", "inconsistent", "low-confidence", "judges-disagree", "audit", "no-gold"
]
MAX_GUIDELINES_CHARS = 100_000
MAX_OVERLAP = 20
DEFAULT_AUDIT_SIZE = 200
DEFAULT_LOW_CONFIDENCE = 0.6
QueueName = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]


class QueueSpec(BaseModel):
    """What a queue holds and how it is reviewed."""

    model_config = ConfigDict(extra="forbid")

    name: QueueName = Field(description="Letters, digits, '.', '_', '-'; unique.")
    kind: QueueKind
    batch_id: uuid.UUID | None = Field(None, description="Only this batch (required for audit).")
    overlap: int = Field(1, ge=1, le=MAX_OVERLAP, description="k: reviewers per item.")
    guidelines: CleanStr = Field("", max_length=MAX_GUIDELINES_CHARS, description="Markdown.")
    show_machine: bool = Field(False, description="Show machine verdicts (blind by default).")
    threshold: float | None = Field(
        None,
        ge=0,
        le=1,
        description="disagreement: at least this; low-confidence: below this (0.6).",
    )
    size: int | None = Field(None, ge=1, le=10_000_000, description="audit: sample size (200).")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="audit: the sample's seed.")

    @model_validator(mode="after")
    def _fits_kind(self) -> QueueSpec:
        if self.size is not None and self.kind != "audit":
            raise ValueError("size is for audit queues only")
        if self.threshold is not None and self.kind not in ("disagreement", "low-confidence"):
            raise ValueError("threshold is for disagreement and low-confidence queues only")
        return self


async def create_queue(
    session: AsyncSession, spec: QueueSpec, *, created_by: str | None, max_items: int
) -> ReviewQueue:
    """Store the queue and its items; 409-free: a taken name is a 422 naming ``name``."""
    if await store.queue_by_name(session, spec.name) is not None:
        raise InvalidInputError(f"a review queue named {spec.name!r} exists", field="name")
    if spec.kind == "audit" and spec.batch_id is None:
        raise InvalidInputError("an audit queue samples one batch: give the batch", field="batch")
    if spec.batch_id is not None and await batches.get(session, spec.batch_id) is None:
        raise NotFoundError(f"no batch {spec.batch_id}", field="batch_id")
    size = spec.size if spec.size is not None else DEFAULT_AUDIT_SIZE
    if spec.kind == "audit" and size > max_items:
        raise InvalidInputError(f"size is over the limit of {max_items} items", field="size")
    threshold = spec.threshold
    if spec.kind == "low-confidence" and threshold is None:
        threshold = DEFAULT_LOW_CONFIDENCE
    if spec.kind == "audit":
        assert spec.batch_id is not None
        rows = await sample(store.stream_judged(session, spec.batch_id), size, spec.seed)
    else:
        found = await store.candidates(
            session, store.Selection(spec.kind, spec.batch_id, threshold, max_items + 1)
        )
        rows = _one_per_pair(found)
    if spec.kind != "audit" and len(rows) > max_items:
        raise InvalidInputError(
            f"the {spec.kind} queue would hold over {max_items} items"
            " (REFEREE_MAX_QUEUE_ITEMS); narrow it with a batch or a threshold",
            field="kind",
        )
    params = {"threshold": threshold, "size": size if spec.kind == "audit" else None}
    if spec.kind == "audit":
        params["seed"] = spec.seed
    queue = await store.add_queue(
        session,
        {
            "name": spec.name,
            "kind": spec.kind,
            "batch_id": spec.batch_id,
            "params": params,
            "overlap": spec.overlap,
            "guidelines": spec.guidelines,
            "show_machine": spec.show_machine,
            "items": len(rows),
            "created_by": created_by,
        },
    )
    await store.add_items(session, queue.id, rows)
    return queue


def _one_per_pair(
    found: list[tuple[uuid.UUID, str | None]],
) -> list[tuple[uuid.UUID, str | None]]:
    seen: set[str] = set()
    rows = []
    for comparison_id, key in found:
        if key is not None:
            if key in seen:
                continue
            seen.add(key)
        rows.append((comparison_id, key))
    return rows


async def sample(rows: AsyncIterable[Row], size: int, seed: int) -> list[Row]:
    """A uniform sample without replacement of a stream, in a seeded random order.

    Reservoir sampling (Algorithm R): after n rows, each of them is in the
    sample with probability size / n, and every subset of that size is
    equally likely; memory holds the sample only. The same rows in the same
    order with the same seed give the same sample; the final shuffle is the
    order items are served in.
    """
    rng = random.Random(seed)
    kept: list[Row] = []
    seen = 0
    async for row in rows:
        if seen < size:
            kept.append(row)
        else:
            slot = rng.randrange(seen + 1)
            if slot < size:
                kept[slot] = row
        seen += 1
    rng.shuffle(kept)
    return kept
