"""Generations: their prompts, the sample work queue, and the candidates sampled.

Reading (what selection strategies and rounds use):

- :func:`get` / :func:`get_by_name` / :func:`find` — a generation by id, by
  name, or by either (a string that parses as a UUID is tried as an id first).
- :func:`candidates_by_prompt` — per prompt, in file order, a
  :class:`PromptCandidates`: the prompt key, the prompt (a string or a list of
  ``{"role", "content"}`` messages, as given), its id and metadata, its
  distinct candidates (:class:`CandidateView`: id, text, count, the sample
  indexes that produced it, status) and its failed samples
  (:class:`FailedSample`). A prompt whose samples all failed has no
  candidates; nothing is ever invented for a failed sample.
- :func:`status_counts` — samples by status, to tell whether a generation is done.

Writing (the generation runner): :func:`get_or_create`, :func:`add_prompts`,
then :func:`claim` / :func:`renew` / :func:`take_ownership` /
:func:`write_samples` / :func:`release` as the comparison queue in
:mod:`app.store.batches` does: ``SELECT … FOR UPDATE SKIP LOCKED`` on
PostgreSQL, leases that expire when a worker dies, and a final ownership
check so a sample whose lease was taken over is never stored twice.
The caller owns the transaction: nothing here commits.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.store.db import insert_for
from app.store.models import utcnow
from app.store.models_generation import (
    Generation,
    GenerationCandidate,
    GenerationPrompt,
    GenerationSample,
)
from app.store.models_tracing import sample_trace_id

__all__ = [
    "CandidateView",
    "ClaimedSample",
    "FailedSample",
    "PromptCandidates",
    "SampleResult",
    "SampleView",
    "add_counts",
    "add_prompts",
    "candidate_count",
    "candidate_id",
    "candidates_by_prompt",
    "claim",
    "drawn_by_prompt_key",
    "find",
    "generation_lease_owners",
    "get",
    "get_by_name",
    "get_or_create",
    "lease_owners_like",
    "leased_to",
    "list_generations",
    "move_lease",
    "prompt_count",
    "release",
    "renew",
    "reset_failed",
    "samples_by_prompt",
    "set_status",
    "status_counts",
    "take_ownership",
    "text_key",
    "total_cost",
    "write_samples",
]


@dataclass(frozen=True, slots=True)
class CandidateView:
    """A distinct text sampled for a prompt.

    ``count`` is how many samples produced it (``len(sample_indexes)``);
    ``status`` is ``done`` (a candidate exists only for a sample that succeeded).
    """

    id: uuid.UUID
    text: str
    count: int
    sample_indexes: tuple[int, ...]
    status: str = "done"


@dataclass(frozen=True, slots=True)
class FailedSample:
    """A sample the policy failed to produce: its index and why."""

    sample_index: int
    error_class: str | None
    error_message: str | None


@dataclass(frozen=True, slots=True)
class PromptCandidates:
    """One prompt of a generation with what was sampled for it."""

    prompt_id: uuid.UUID
    prompt_key: str
    prompt: Any
    """A string, or a list of ``{"role", "content"}`` messages."""
    external_id: str | None
    metadata: dict[str, Any] | None
    candidates: list[CandidateView] = field(default_factory=list)
    """Distinct texts, in order of the first sample index that produced each."""
    failed: list[FailedSample] = field(default_factory=list)
    pending: int = 0
    """Samples not yet drawn (the generation is unfinished when any prompt has some)."""


@dataclass(frozen=True, slots=True)
class SampleResult:
    """What one sample came to, for :func:`write_samples`: a text, or an error (never both)."""

    sample_id: int
    text: str | None
    request_id: str | None
    seed: int | None
    model: str | None
    finish_reason: str | None
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal | None
    latency_ms: float | None
    attempts: int
    error_class: str | None = None
    error_message: str | None = None
    prompt_id: uuid.UUID | None = None
    """The sample's prompt, when the writer knows it (saves looking it up)."""
    trace_id: str | None = None
    """The trace of the policy call that drew it (None: tracing off, or a provider batch)."""


def text_key(text: str) -> str:
    """The key that makes equal texts of one prompt one candidate."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


async def get_or_create(session: AsyncSession, values: dict[str, Any]) -> tuple[Generation, bool]:
    """The generation named ``values["name"]``, created from ``values`` if new.

    Returns (generation, created). ``values`` holds the :class:`Generation`
    columns (name, source, policy, policy_config, checkpoint, n, params,
    seed, api_key_id); an existing generation is returned as it is, and
    the caller compares its settings.
    """
    now = utcnow()
    row = {"id": uuid.uuid4(), "status": "open", "submitted": 0, "rejected": 0, **values}
    row.update(created_at=now, updated_at=now)
    result = await session.execute(
        insert_for(session)(Generation)
        .values(**row)
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(Generation.id)
    )
    created = result.scalar_one_or_none() is not None
    generation = await get_by_name(session, values["name"])
    assert generation is not None  # inserted just now or already there
    return generation, created


async def get(session: AsyncSession, generation_id: uuid.UUID) -> Generation | None:
    found: Generation | None = await session.get(Generation, generation_id)
    return found


async def get_by_name(session: AsyncSession, name: str) -> Generation | None:
    result = await session.execute(select(Generation).where(Generation.name == name))
    return result.scalar_one_or_none()


async def find(session: AsyncSession, ref: str) -> Generation | None:
    """A generation by id (when ``ref`` parses as a UUID) or else by name."""
    try:
        generation_id = uuid.UUID(ref)
    except ValueError:
        return await get_by_name(session, ref)
    return await get(session, generation_id) or await get_by_name(session, ref)


async def list_generations(session: AsyncSession, limit: int = 100) -> list[Generation]:
    result = await session.execute(
        select(Generation).order_by(Generation.created_at.desc(), Generation.id).limit(limit)
    )
    return list(result.scalars())


async def set_status(session: AsyncSession, generation_id: uuid.UUID, status: str) -> None:
    await session.execute(
        update(Generation)
        .where(Generation.id == generation_id)
        .values(status=status, updated_at=utcnow())
    )


async def add_counts(
    session: AsyncSession, generation_id: uuid.UUID, submitted: int, rejected: int
) -> None:
    await session.execute(
        update(Generation)
        .where(Generation.id == generation_id)
        .values(
            submitted=Generation.submitted + submitted,
            rejected=Generation.rejected + rejected,
            updated_at=utcnow(),
        )
    )


async def add_prompts(
    session: AsyncSession, generation: Generation, rows: Sequence[dict[str, Any]]
) -> int:
    """Store prompts (``prompt_key``, ``prompt``, ``external_id``, ``metadata``,
    ``source_line``) with ``generation.n`` pending samples each.

    A prompt whose key the generation holds already is skipped with its
    samples, so adding a file again (a resumed run) adds nothing. Returns
    how many prompts were new.
    """
    if not rows:
        return 0
    now = utcnow()
    values = [
        {
            "id": uuid.uuid4(),
            "generation_id": generation.id,
            "prompt_key": r["prompt_key"],
            "external_id": r.get("external_id"),
            "prompt": r["prompt"],
            "meta": r.get("metadata"),
            "source_line": r.get("source_line"),
            "created_at": now,
        }
        for r in rows
    ]
    statement = insert_for(session)(GenerationPrompt).on_conflict_do_nothing(
        index_elements=["generation_id", "prompt_key"]
    )
    result = await session.execute(statement.returning(GenerationPrompt.id), values)
    new_ids = list(result.scalars())
    # Samples in prompt order, so claiming by sample id draws a prompt's indexes together.
    position = {v["id"]: n for n, v in enumerate(values)}
    ordered = sorted(new_ids, key=position.__getitem__)
    samples = [
        {
            "generation_id": generation.id,
            "prompt_id": prompt_id,
            "sample_index": index,
            "status": "pending",
            "input_tokens": 0,
            "output_tokens": 0,
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        for prompt_id in ordered
        for index in range(generation.n)
    ]
    # On the Core table: the ORM's bulk insert path costs more per row than the database.
    table = cast(Table, GenerationSample.__table__)
    statement = insert_for(session)(table).on_conflict_do_nothing(
        index_elements=["prompt_id", "sample_index"]
    )
    for start in range(0, len(samples), 1000):
        await session.execute(statement, samples[start : start + 1000])
    return len(new_ids)


@dataclass(frozen=True, slots=True)
class ClaimedSample:
    """A leased sample with what sampling it needs."""

    sample_id: int
    prompt_id: uuid.UUID
    sample_index: int
    prompt: Any


async def claim(
    session: AsyncSession,
    generation_id: uuid.UUID,
    owner: str,
    limit: int,
    lease: timedelta,
) -> list[ClaimedSample]:
    """Lease up to ``limit`` pending samples no live lease holds, a prompt's indexes together."""
    now = utcnow()
    candidates = (
        select(GenerationSample.id)
        .where(
            GenerationSample.generation_id == generation_id,
            GenerationSample.status == "pending",
            or_(
                GenerationSample.lease_expires_at.is_(None),
                GenerationSample.lease_expires_at < now,
            ),
        )
        .order_by(GenerationSample.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list((await session.execute(candidates)).scalars())
    if not ids:
        return []
    await session.execute(
        update(GenerationSample)
        .where(GenerationSample.id.in_(ids))
        .values(lease_owner=owner, lease_expires_at=now + lease)
        .execution_options(synchronize_session=False)
    )
    return await _claimed(session, GenerationSample.id.in_(ids))


async def _claimed(session: AsyncSession, *where: ColumnElement[bool]) -> list[ClaimedSample]:
    """The samples ``where`` selects, with their prompts, in claim order."""
    result = await session.execute(
        select(
            GenerationSample.id,
            GenerationSample.prompt_id,
            GenerationSample.sample_index,
            GenerationPrompt.prompt,
        )
        .join(GenerationPrompt, GenerationPrompt.id == GenerationSample.prompt_id)
        .where(*where)
        .order_by(GenerationSample.id)
    )
    return [ClaimedSample(*row) for row in result.all()]


async def renew(session: AsyncSession, owner: str, ids: Sequence[int], lease: timedelta) -> None:
    if ids:
        await session.execute(
            update(GenerationSample)
            .where(GenerationSample.id.in_(ids), GenerationSample.lease_owner == owner)
            .values(lease_expires_at=utcnow() + lease)
        )


async def release(session: AsyncSession, owners: Sequence[str]) -> int:
    """Drop the leases of these owners on samples still pending (a clean stop)."""
    result = await session.execute(
        update(GenerationSample)
        .where(GenerationSample.lease_owner.in_(owners), GenerationSample.status == "pending")
        .values(lease_owner=None, lease_expires_at=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def lease_owners_like(session: AsyncSession, prefix: str) -> list[str]:
    """Owners (``host:pid:nonce``) starting with ``prefix`` that lease pending samples."""
    result = await session.execute(
        select(GenerationSample.lease_owner)
        .where(
            GenerationSample.lease_owner.like(f"{prefix}%"), GenerationSample.status == "pending"
        )
        .distinct()
    )
    return [owner for owner in result.scalars() if owner]


async def generation_lease_owners(
    session: AsyncSession, generation_id: uuid.UUID, prefix: str
) -> list[str]:
    """The owners starting with ``prefix`` that lease pending samples of one generation."""
    result = await session.execute(
        select(GenerationSample.lease_owner)
        .where(
            GenerationSample.generation_id == generation_id,
            GenerationSample.lease_owner.like(f"{prefix}%"),
            GenerationSample.status == "pending",
        )
        .distinct()
        .order_by(GenerationSample.lease_owner)
    )
    return [owner for owner in result.scalars() if owner]


async def move_lease(session: AsyncSession, owner: str, to: str, lease: timedelta) -> None:
    """Hand the pending samples ``owner`` leases to ``to``, for ``lease`` from now."""
    await session.execute(
        update(GenerationSample)
        .where(GenerationSample.lease_owner == owner, GenerationSample.status == "pending")
        .values(lease_owner=to, lease_expires_at=utcnow() + lease)
        .execution_options(synchronize_session=False)
    )


async def leased_to(session: AsyncSession, owner: str) -> list[ClaimedSample]:
    """The pending samples ``owner`` leases, with their prompts, in claim order."""
    return await _claimed(
        session, GenerationSample.lease_owner == owner, GenerationSample.status == "pending"
    )


async def take_ownership(session: AsyncSession, owner: str, ids: Sequence[int]) -> set[int]:
    """Close the leased samples about to be written; returns the ids still ours.

    A worker whose lease expired and was taken over gets nothing back for
    that sample and discards its late result: no index is stored twice.
    """
    if not ids:
        return set()
    result = await session.execute(
        update(GenerationSample)
        .where(
            GenerationSample.id.in_(ids),
            GenerationSample.lease_owner == owner,
            GenerationSample.status == "pending",
        )
        .values(lease_owner=None, lease_expires_at=None)
        .returning(GenerationSample.id)
        .execution_options(synchronize_session=False)
    )
    return set(result.scalars())


_CANDIDATE_IDS = uuid.UUID("6f1c3d55-8d0e-4b8e-9a38-3b1f0e2c7a10")


def candidate_id(prompt_id: uuid.UUID, key: str) -> uuid.UUID:
    """A candidate's id, from its prompt and text key: equal texts meet on one row."""
    return uuid.uuid5(_CANDIDATE_IDS, f"{prompt_id}:{key}")


async def write_samples(
    session: AsyncSession, generation_id: uuid.UUID, results: Sequence[SampleResult]
) -> None:
    """Store sampled results: a text joins (or starts) its prompt's candidate; a failure is kept.

    Two statements for any number of results: one upsert of the candidates
    (counts added), one update of the samples by primary key.
    """
    if not results:
        return
    prompt_of = {r.sample_id: r.prompt_id for r in results if r.prompt_id is not None}
    unknown = [r.sample_id for r in results if r.text is not None and r.prompt_id is None]
    if unknown:
        prompt_of.update(
            (
                await session.execute(
                    select(GenerationSample.id, GenerationSample.prompt_id).where(
                        GenerationSample.id.in_(unknown)
                    )
                )
            ).all()
        )
    now = utcnow()
    candidates: dict[uuid.UUID, dict[str, Any]] = {}
    chosen: dict[int, uuid.UUID] = {}
    for r in results:
        if r.text is None:
            continue
        key = text_key(r.text)
        cid = candidate_id(prompt_of[r.sample_id], key)
        chosen[r.sample_id] = cid
        if cid in candidates:
            candidates[cid]["count"] += 1
            continue
        candidates[cid] = {
            "id": cid,
            "generation_id": generation_id,
            "prompt_id": prompt_of[r.sample_id],
            "text_key": key,
            "text": r.text,
            "count": 1,
            "created_at": now,
        }
    if candidates:
        # On the Core table: the ORM's bulk insert path costs more per row than the database.
        candidate_table = cast(Table, GenerationCandidate.__table__)
        insert = insert_for(session)(candidate_table)
        statement = insert.on_conflict_do_update(
            index_elements=["prompt_id", "text_key"],
            set_={"count": candidate_table.c.count + insert.excluded.count},
        )
        await session.execute(statement, list(candidates.values()))
    table = cast(Table, GenerationSample.__table__)
    # Core executemany by primary key: the ORM's bulk path costs more per row.
    await session.execute(
        update(table).where(table.c.id == bindparam("sample_id")),
        [
            {
                "sample_id": r.sample_id,
                "status": "done" if r.text is not None else "failed",
                "candidate_id": chosen.get(r.sample_id),
                "request_id": r.request_id,
                "seed": r.seed,
                "model": r.model,
                "finish_reason": r.finish_reason,
                "input_tokens": r.input_tokens,
                "output_tokens": r.output_tokens,
                "cost_usd": r.cost_usd,
                "latency_ms": r.latency_ms,
                "attempts": r.attempts,
                "error_class": r.error_class,
                "error_message": r.error_message,
                sample_trace_id.name: r.trace_id,
                "updated_at": now,
            }
            for r in results
        ],
    )


async def reset_failed(session: AsyncSession, generation_id: uuid.UUID) -> int:
    """Put a generation's failed samples back in the queue (``--retry-failed``)."""
    result = await session.execute(
        update(GenerationSample)
        .where(GenerationSample.generation_id == generation_id, GenerationSample.status == "failed")
        .values(status="pending", lease_owner=None, lease_expires_at=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def status_counts(session: AsyncSession, generation_id: uuid.UUID) -> dict[str, int]:
    """Samples by status (pending, done, failed, cancelled)."""
    result = await session.execute(
        select(GenerationSample.status, func.count())
        .where(GenerationSample.generation_id == generation_id)
        .group_by(GenerationSample.status)
    )
    return {status: int(n) for status, n in result.all()}


async def total_cost(session: AsyncSession, generation_id: uuid.UUID) -> Decimal:
    result = await session.scalar(
        select(func.coalesce(func.sum(GenerationSample.cost_usd), 0)).where(
            GenerationSample.generation_id == generation_id
        )
    )
    return Decimal(str(result or 0))


async def candidate_count(session: AsyncSession, generation_id: uuid.UUID) -> int:
    """Distinct candidate texts stored over the generation's prompts."""
    result = await session.scalar(
        select(func.count())
        .select_from(GenerationCandidate)
        .where(GenerationCandidate.generation_id == generation_id)
    )
    return int(result or 0)


async def drawn_by_prompt_key(session: AsyncSession, generation_id: uuid.UUID) -> dict[str, int]:
    """Prompt key → samples drawn (done or failed), for a dry run of a resumed generation."""
    result = await session.execute(
        select(GenerationPrompt.prompt_key, func.count())
        .join(GenerationSample, GenerationSample.prompt_id == GenerationPrompt.id)
        .where(
            GenerationPrompt.generation_id == generation_id,
            GenerationSample.status.in_(["done", "failed"]),
        )
        .group_by(GenerationPrompt.prompt_key)
    )
    return {key: int(n) for key, n in result.all()}


async def candidates_by_prompt(
    session: AsyncSession,
    generation_id: uuid.UUID,
    *,
    offset: int = 0,
    limit: int | None = None,
) -> list[PromptCandidates]:
    """Each prompt of the generation (file order) with its distinct candidates and failures.

    ``offset`` / ``limit`` page through the prompts (default: all of them).
    """
    prompts = list(
        (
            await session.execute(
                select(GenerationPrompt)
                .where(GenerationPrompt.generation_id == generation_id)
                .order_by(
                    GenerationPrompt.source_line, GenerationPrompt.created_at, GenerationPrompt.id
                )
                .offset(offset)
                .limit(limit)
            )
        ).scalars()
    )
    if not prompts:
        return []
    samples = await session.execute(
        select(
            GenerationSample.prompt_id,
            GenerationSample.sample_index,
            GenerationSample.status,
            GenerationSample.error_class,
            GenerationSample.error_message,
            GenerationCandidate.id,
            GenerationCandidate.text,
        )
        .outerjoin(GenerationCandidate, GenerationCandidate.id == GenerationSample.candidate_id)
        .where(GenerationSample.prompt_id.in_([p.id for p in prompts]))
        .order_by(GenerationSample.prompt_id, GenerationSample.sample_index)
    )
    texts: dict[uuid.UUID, dict[uuid.UUID, tuple[str, list[int]]]] = {}
    failed: dict[uuid.UUID, list[FailedSample]] = {}
    pending: dict[uuid.UUID, int] = {}
    for prompt_id, index, status, error_class, message, cand_id, text in samples.all():
        if status == "done" and cand_id is not None:
            texts.setdefault(prompt_id, {}).setdefault(cand_id, (text, []))[1].append(index)
        elif status == "failed":
            failed.setdefault(prompt_id, []).append(FailedSample(index, error_class, message))
        elif status == "pending":
            pending[prompt_id] = pending.get(prompt_id, 0) + 1
    return [
        PromptCandidates(
            prompt_id=p.id,
            prompt_key=p.prompt_key,
            prompt=p.prompt,
            external_id=p.external_id,
            metadata=p.meta,
            candidates=[
                CandidateView(cid, text, len(indexes), tuple(indexes))
                for cid, (text, indexes) in texts.get(p.id, {}).items()
            ],
            failed=failed.get(p.id, []),
            pending=pending.get(p.id, 0),
        )
        for p in prompts
    ]


@dataclass(frozen=True, slots=True)
class SampleView:
    """One sample's provenance: how it was drawn and what it cost, or why it failed."""

    sample_index: int
    status: str
    candidate_id: uuid.UUID | None
    request_id: str | None
    seed: int | None
    model: str | None
    finish_reason: str | None
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal | None
    latency_ms: float | None
    attempts: int
    error_class: str | None
    error_message: str | None


async def samples_by_prompt(
    session: AsyncSession, prompt_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[SampleView]]:
    """Prompt id → its samples in index order, each with its provenance."""
    found: dict[uuid.UUID, list[SampleView]] = {p: [] for p in prompt_ids}
    for start in range(0, len(prompt_ids), 500):
        rows = await session.execute(
            select(GenerationSample)
            .where(GenerationSample.prompt_id.in_(prompt_ids[start : start + 500]))
            .order_by(GenerationSample.prompt_id, GenerationSample.sample_index)
        )
        for s in rows.scalars():
            found[s.prompt_id].append(
                SampleView(
                    s.sample_index,
                    s.status,
                    s.candidate_id,
                    s.request_id,
                    s.seed,
                    s.model,
                    s.finish_reason,
                    s.input_tokens,
                    s.output_tokens,
                    s.cost_usd,
                    s.latency_ms,
                    s.attempts,
                    s.error_class,
                    s.error_message,
                )
            )
    return found


async def prompt_count(session: AsyncSession, generation_id: uuid.UUID) -> int:
    result = await session.scalar(
        select(func.count())
        .select_from(GenerationPrompt)
        .where(GenerationPrompt.generation_id == generation_id)
    )
    return int(result or 0)
