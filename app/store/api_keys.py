"""API keys for the HTTP service, stored as SHA-256 hashes only."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.store.models import ApiKey, utcnow

KEY_PREFIX = "ref_"


def hash_key(key: str) -> str:
    # Keys are 256-bit random tokens, so a fast hash is enough: there is no
    # dictionary to attack, unlike passwords.
    return hashlib.sha256(key.encode()).hexdigest()


async def create(session: AsyncSession, name: str) -> tuple[ApiKey, str]:
    """Create a key; the plain key is returned once and never stored."""
    plain = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name, prefix=plain[:12], key_hash=hash_key(plain))
    session.add(row)
    await session.flush()
    return row, plain


async def any_active(session: AsyncSession) -> bool:
    count = await session.scalar(
        select(func.count()).select_from(ApiKey).where(ApiKey.revoked_at.is_(None))
    )
    return bool(count)


async def is_valid(session: AsyncSession, plain: str) -> bool:
    found = await session.scalar(
        select(ApiKey.id).where(ApiKey.key_hash == hash_key(plain), ApiKey.revoked_at.is_(None))
    )
    return found is not None


async def list_all(session: AsyncSession) -> list[ApiKey]:
    return list(await session.scalars(select(ApiKey).order_by(ApiKey.id)))


async def revoke(session: AsyncSession, key_id: int) -> bool:
    result = await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return bool(getattr(result, "rowcount", 0))
