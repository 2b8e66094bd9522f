"""API keys for the HTTP service, stored as SHA-256 hashes only, and what each key spent."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.store.models import ApiKey, JudgeCall, utcnow
from app.store.models_generation import Generation, GenerationSample

KEY_PREFIX = "ref_"


def hash_key(key: str) -> str:
    # Keys are 256-bit random tokens, so a fast hash is enough: there is no
    # dictionary to attack, unlike passwords.
    return hashlib.sha256(key.encode()).hexdigest()


async def create(
    session: AsyncSession,
    name: str,
    scopes: Sequence[str],
    daily_budget_usd: Decimal | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; the plain key is returned once and never stored."""
    plain = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        name=name,
        prefix=plain[:12],
        key_hash=hash_key(plain),
        scopes=sorted(set(scopes)),
        daily_budget_usd=daily_budget_usd,
    )
    session.add(row)
    await session.flush()
    return row, plain


async def find_active(session: AsyncSession, plain: str) -> ApiKey | None:
    """The unrevoked key with this plain text, or None."""
    found: ApiKey | None = await session.scalar(
        select(ApiKey).where(ApiKey.key_hash == hash_key(plain), ApiKey.revoked_at.is_(None))
    )
    return found


async def get(session: AsyncSession, key_id: int) -> ApiKey | None:
    return await session.get(ApiKey, key_id)


async def spent_since(session: AsyncSession, key_id: int, since: datetime) -> Decimal:
    """USD the key's calls have cost since ``since`` (calls without a known price count 0).

    Judge calls and policy samples both count: a generation (a round's too)
    bills the key that submitted it, from the time each sample was drawn.
    """
    judged = await session.scalar(
        select(func.coalesce(func.sum(JudgeCall.cost_usd), 0)).where(
            JudgeCall.api_key_id == key_id, JudgeCall.created_at >= since
        )
    )
    sampled = await session.scalar(
        select(func.coalesce(func.sum(GenerationSample.cost_usd), 0))
        .join(Generation, Generation.id == GenerationSample.generation_id)
        .where(
            Generation.api_key_id == key_id,
            GenerationSample.cost_usd.is_not(None),
            GenerationSample.updated_at >= since,
        )
    )
    return Decimal(judged or 0) + Decimal(sampled or 0)


async def list_all(session: AsyncSession) -> list[ApiKey]:
    return list(await session.scalars(select(ApiKey).order_by(ApiKey.id)))


async def revoke(session: AsyncSession, key_id: int) -> bool:
    result = await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return bool(getattr(result, "rowcount", 0))
