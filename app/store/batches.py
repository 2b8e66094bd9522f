"""Batches and the work queue: enqueue pending comparisons, claim them under leases.

Claims use ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, so any number
of workers on any number of machines take disjoint rows; SQLite ignores the
locking clause and runs one worker. A lease that is not renewed expires, and
the row becomes claimable again: a killed worker loses its pairs to the others.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.observability import metrics
from app.store.comparisons import is_current_verdict
from app.store.db import insert_for
from app.store.models import Batch, Comparison, Verdict, utcnow


async def get_or_create(
    session: AsyncSession, name: str, source: str, judge: str, api_key_id: int | None = None
) -> tuple[Batch, bool]:
    """The batch with this name, created if new. Returns (batch, created).

    ``api_key_id``: the key submitting it, billed for its calls (kept from the first submission).
    """
    insert = insert_for(session)
    await session.execute(
        insert(Batch)
        .values(
            id=uuid.uuid4(),
            name=name,
            source=source,
            judge=judge,
            status="open",
            submitted=0,
            rejected=0,
            api_key_id=api_key_id,
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["name"])
    )
    batch = (await session.execute(select(Batch).where(Batch.name == name))).scalar_one()
    return batch, batch.submitted == 0 and batch.status == "open"


async def get(session: AsyncSession, batch_id: uuid.UUID) -> Batch | None:
    found: Batch | None = await session.get(Batch, batch_id)
    return found


async def add_counts(
    session: AsyncSession, batch_id: uuid.UUID, submitted: int, rejected: int
) -> None:
    await session.execute(
        update(Batch)
        .where(Batch.id == batch_id)
        .values(
            submitted=Batch.submitted + submitted,
            rejected=Batch.rejected + rejected,
            updated_at=utcnow(),
        )
    )


async def set_status(session: AsyncSession, batch_id: uuid.UUID, status: str) -> None:
    await session.execute(
        update(Batch).where(Batch.id == batch_id).values(status=status, updated_at=utcnow())
    )


async def enqueue(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> int:
    """Insert pending comparisons; rows whose label key exists are skipped. Returns inserted."""
    if not rows:
        return 0
    insert = insert_for(session)
    statement = insert(Comparison).on_conflict_do_nothing(index_elements=["label_key"])
    result = await session.execute(statement.returning(Comparison.id), list(rows))
    return len(result.all())


async def add_merged_ids(session: AsyncSession, merged: dict[str, list[str]]) -> None:
    """Keep the ids of lines merged into the comparisons with these label keys.

    ``external_ids`` becomes the comparison's own id, then every id it held
    already, then the new ones, each once; written only when it adds an id.
    """
    keys = list(merged)
    for start in range(0, len(keys), 500):
        found = await session.execute(
            select(
                Comparison.id, Comparison.label_key, Comparison.external_id, Comparison.external_ids
            ).where(Comparison.label_key.in_(keys[start : start + 500]))
        )
        for row_id, key, first, known in found.all():
            ids = list(known or ([first] if first is not None else []))
            ids += [new for new in dict.fromkeys(merged[key]) if new not in ids]
            if ids != (known or []) and set(ids) - {first}:
                await session.execute(
                    update(Comparison).where(Comparison.id == row_id).values(external_ids=ids)
                )


async def existing_keys(session: AsyncSession, keys: Sequence[str]) -> dict[str, str]:
    """Label key → status for the keys already stored."""
    result = await session.execute(
        select(Comparison.label_key, Comparison.status).where(Comparison.label_key.in_(keys))
    )
    return {key: status for key, status in result.all()}


async def claim(
    session: AsyncSession,
    batch_id: uuid.UUID | None,
    owner: str,
    limit: int,
    lease: timedelta,
) -> list[Comparison]:
    """Lease up to ``limit`` pending comparisons no live lease holds."""
    now = utcnow()
    candidates = (
        select(Comparison.id)
        .where(
            Comparison.status == "pending",
            or_(Comparison.lease_expires_at.is_(None), Comparison.lease_expires_at < now),
        )
        .order_by(Comparison.created_at, Comparison.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if batch_id is not None:
        candidates = candidates.where(Comparison.batch_id == batch_id)
    found = (await session.execute(candidates.add_columns(Comparison.lease_owner))).all()
    if not found:
        return []
    ids = [comparison_id for comparison_id, _ in found]
    # A row still naming an owner had a lease that ran out: its holder stopped renewing.
    metrics.count_lease("batch", taken_over=sum(owner is not None for _, owner in found))
    await session.execute(
        update(Comparison)
        .where(Comparison.id.in_(ids))
        .values(lease_owner=owner, lease_expires_at=now + lease)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(select(Comparison).where(Comparison.id.in_(ids)))
    claimed: list[Comparison] = list(result.scalars())
    return claimed


async def renew(
    session: AsyncSession, owner: str, ids: Sequence[uuid.UUID], lease: timedelta
) -> None:
    if ids:
        await session.execute(
            update(Comparison)
            .where(Comparison.id.in_(ids), Comparison.lease_owner == owner)
            .values(lease_expires_at=utcnow() + lease)
        )


async def release(session: AsyncSession, owners: Sequence[str]) -> int:
    """Drop the leases of these owners (a clean stop, or owners known to be dead)."""
    result = await session.execute(
        update(Comparison)
        .where(Comparison.lease_owner.in_(owners), Comparison.status == "pending")
        .values(lease_owner=None, lease_expires_at=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def lease_owners_like(session: AsyncSession, prefix: str) -> list[str]:
    result = await session.execute(
        select(Comparison.lease_owner)
        .where(Comparison.lease_owner.like(f"{prefix}%"), Comparison.status == "pending")
        .distinct()
    )
    return [owner for owner in result.scalars() if owner]


async def take_ownership(
    session: AsyncSession, owner: str, ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    """Close the leased rows whose results are about to be written; returns those still ours.

    The guard is what keeps a pair from being stored twice: a worker whose
    lease expired and was taken over gets nothing back for that pair and
    discards its late result.
    """
    if not ids:
        return set()
    result = await session.execute(
        update(Comparison)
        .where(
            Comparison.id.in_(ids),
            Comparison.lease_owner == owner,
            Comparison.status == "pending",
        )
        .values(lease_owner=None, lease_expires_at=None)
        .returning(Comparison.id)
        .execution_options(synchronize_session=False)
    )
    return set(result.scalars())


async def reset_failed(session: AsyncSession, batch_id: uuid.UUID) -> int:
    """Put a batch's failed comparisons back in the queue (--retry-failed)."""
    result = await session.execute(
        update(Comparison)
        .where(Comparison.batch_id == batch_id, Comparison.status == "failed")
        .values(status="pending", error_class=None, lease_owner=None, lease_expires_at=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def cancel_pending(session: AsyncSession, batch_id: uuid.UUID) -> int:
    result = await session.execute(
        update(Comparison)
        .where(Comparison.batch_id == batch_id, Comparison.status == "pending")
        .values(status="cancelled", lease_owner=None, lease_expires_at=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def pending_count(session: AsyncSession, batch_id: uuid.UUID) -> int:
    """The batch's pending rows, counted on the claim index (costs as many rows as are pending)."""
    result = await session.execute(
        select(func.count())
        .select_from(Comparison)
        .where(Comparison.batch_id == batch_id, Comparison.status == "pending")
    )
    return int(result.scalar_one())


async def status_counts(session: AsyncSession, batch_id: uuid.UUID) -> dict[str, int]:
    result = await session.execute(
        select(Comparison.status, func.count())
        .where(Comparison.batch_id == batch_id)
        .group_by(Comparison.status)
    )
    return {status: int(n) for status, n in result.all()}


async def outcome_counts(session: AsyncSession, batch_id: uuid.UUID) -> dict[str, int]:
    """Ties, position-biased ties and failures by error class, for a batch summary."""
    verdicts = await session.execute(
        select(Verdict.winner, Verdict.position_consistent, func.count())
        .join(Comparison, and_(Comparison.id == Verdict.comparison_id))
        .where(Comparison.batch_id == batch_id, is_current_verdict())
        .group_by(Verdict.winner, Verdict.position_consistent)
    )
    counts: dict[str, int] = {}
    for winner, consistent, n in verdicts.all():
        if winner == "tie":
            counts["tied"] = counts.get("tied", 0) + int(n)
        if consistent is False:
            counts["position_biased"] = counts.get("position_biased", 0) + int(n)
    failures = await session.execute(
        select(Comparison.error_class, func.count())
        .where(Comparison.batch_id == batch_id, Comparison.status == "failed")
        .group_by(Comparison.error_class)
    )
    for error_class, n in failures.all():
        counts[f"failed:{error_class}"] = int(n)
    return counts


async def list_batches(session: AsyncSession, limit: int = 100) -> list[Batch]:
    return list(
        (
            await session.execute(select(Batch).order_by(Batch.created_at.desc()).limit(limit))
        ).scalars()
    )


async def pending_by_judge(session: AsyncSession) -> dict[str, int]:
    """Pending comparisons per judge label, the queue depth: one grouped count on an index."""
    result = await session.execute(
        select(Comparison.judge, func.count())
        .where(Comparison.status == "pending")
        .group_by(Comparison.judge)
    )
    return {judge: count for judge, count in result.all()}
