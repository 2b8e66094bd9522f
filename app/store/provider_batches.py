"""Submissions to the providers' batch APIs, and the comparisons leased to them.

A submission's comparisons are leased to its owner string for longer than
the providers keep a batch (24 hours), so ``referee worker`` and other runs
leave them alone while the provider works; writing a result closes the lease
(:func:`app.store.batches.take_ownership`), so a result is stored once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.store import batches
from app.store.models import Comparison, ProviderBatch, utcnow

OWNER_PREFIX = "provider-batch:"
RESULTS_KEPT = timedelta(days=29)


def owner_for(submission_id: uuid.UUID) -> str:
    """The lease owner of one submission's comparisons."""
    return f"{OWNER_PREFIX}{submission_id}"


async def record(
    session: AsyncSession,
    submission_id: uuid.UUID,
    batch_id: uuid.UUID,
    provider: str,
    provider_batch_id: str,
    judge: str,
    pairs: int,
    requests: int,
) -> None:
    """Store a submission the provider accepted."""
    now = utcnow()
    session.add(
        ProviderBatch(
            id=submission_id,
            batch_id=batch_id,
            provider=provider,
            provider_batch_id=provider_batch_id,
            judge=judge,
            lease_owner=owner_for(submission_id),
            status="submitted",
            pairs=pairs,
            requests=requests,
            created_at=now,
            updated_at=now,
        )
    )
    await session.flush()


async def open_submissions(session: AsyncSession, batch_id: uuid.UUID) -> list[ProviderBatch]:
    """The batch's submissions whose results are not stored yet, oldest first."""
    result = await session.execute(
        select(ProviderBatch)
        .where(ProviderBatch.batch_id == batch_id, ProviderBatch.status == "submitted")
        .order_by(ProviderBatch.created_at)
    )
    return list(result.scalars())


async def for_batch(session: AsyncSession, batch_id: uuid.UUID) -> list[ProviderBatch]:
    result = await session.execute(
        select(ProviderBatch)
        .where(ProviderBatch.batch_id == batch_id)
        .order_by(ProviderBatch.created_at)
    )
    return list(result.scalars())


async def set_status(
    session: AsyncSession, submission_id: uuid.UUID, status: str, provider_status: str | None
) -> None:
    await session.execute(
        update(ProviderBatch)
        .where(ProviderBatch.id == submission_id)
        .values(status=status, provider_status=provider_status, updated_at=utcnow())
    )


async def fail(
    session: AsyncSession,
    submission: ProviderBatch,
    provider_status: str | None,
    errors: list[dict[str, Any]],
) -> int:
    """Mark a submission the provider refused as failed and put its pairs back to pending.

    The pairs keep no lease, so the next run submits them again. Only an
    open submission is failed (two runs may see the failure); returns how
    many pairs were given back.
    """
    result = await session.execute(
        update(ProviderBatch)
        .where(ProviderBatch.id == submission.id, ProviderBatch.status == "submitted")
        .values(
            status="failed", provider_status=provider_status, errors=errors, updated_at=utcnow()
        )
    )
    if not getattr(result, "rowcount", 0):
        return 0
    return await batches.release(session, [submission.lease_owner])


async def leased_to(session: AsyncSession, owner: str) -> list[Comparison]:
    """The pending comparisons a submission still holds."""
    result = await session.execute(
        select(Comparison)
        .where(Comparison.lease_owner == owner, Comparison.status == "pending")
        .order_by(Comparison.created_at, Comparison.id)
    )
    return list(result.scalars())


async def renew_open(session: AsyncSession, batch_id: uuid.UUID, lease: timedelta) -> None:
    """Extend the leases the batch's open submissions still hold on their comparisons.

    Only while the provider may still hand out the results (Anthropic keeps
    them 29 days): an older submission's pairs are let go when its lease ends.
    """
    owners = select(ProviderBatch.lease_owner).where(
        ProviderBatch.batch_id == batch_id,
        ProviderBatch.status == "submitted",
        ProviderBatch.created_at > utcnow() - RESULTS_KEPT,
    )
    await session.execute(
        update(Comparison)
        .where(Comparison.lease_owner.in_(owners), Comparison.status == "pending")
        .values(lease_expires_at=utcnow() + lease)
        .execution_options(synchronize_session=False)
    )


async def release_rows(session: AsyncSession, owner: str, ids: Sequence[uuid.UUID]) -> None:
    """Give back claimed comparisons that did not fit in the owner's submission."""
    await session.execute(
        update(Comparison)
        .where(Comparison.id.in_(ids), Comparison.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )


async def orphan_owners(session: AsyncSession, batch_id: uuid.UUID) -> list[str]:
    """Submission leases with no stored submission: a run died before the provider accepted it."""
    held = await session.execute(
        select(Comparison.lease_owner)
        .where(
            Comparison.batch_id == batch_id,
            Comparison.status == "pending",
            Comparison.lease_owner.like(f"{OWNER_PREFIX}%"),
        )
        .distinct()
    )
    owners = {owner for owner in held.scalars() if owner}
    if not owners:
        return []
    known = await session.execute(
        select(ProviderBatch.lease_owner).where(ProviderBatch.lease_owner.in_(owners))
    )
    return sorted(owners - set(known.scalars()))
